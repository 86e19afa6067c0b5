"""Composable function transforms, named as in ``torch.func``: grad, vjp, jvp, vmap, jacobians."""
from .._core.custom import custom_vjp
from ._grad import grad, value_and_grad, vjp
from ._jac import hessian, jacfwd, jacrev
from ._jvp import jvp
from ._vmap import vmap

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "vmap", "jacrev", "jacfwd", "hessian", "custom_vjp"]
