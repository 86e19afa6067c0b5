"""ember.data: collate, datasets, samplers, DataLoader (with worker processes) and transforms."""
from __future__ import annotations

import collections
import os
import time

import numpy as np
import pytest

import ember
from ember.data import (
    BatchSampler,
    ConcatDataset,
    DataError,
    DataLoader,
    DataLoaderError,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    WorkerError,
    default_collate,
    get_worker_info,
    random_split,
)
from ember.data import transforms as T

from helpers import torch


def gen(seed: int) -> ember.Generator:
    return ember.Generator().manual_seed(seed)


def assert_reaped(processes) -> None:
    """Every worker has exited and was waited for (no zombie left in the process table)."""
    assert processes
    for p in processes:
        assert not p.is_alive() and p.exitcode is not None
        assert not os.path.exists(f"/proc/{p.pid}")


# -- collate ---------------------------------------------------------------------------------------------
Point = collections.namedtuple("Point", ["x", "y"])


def test_default_collate_nested_structures_match_pytorch():
    samples = [{"img": np.full((2, 3), i, dtype=np.int32), "meta": (float(i), i, i % 2 == 0, f"s{i}"),
                "t": ember.tensor([i, 2.0 * i]), "pt": Point(np.float32(i), [i, i + 1])} for i in range(4)]
    batch = default_collate(samples)
    assert batch["img"].shape == (4, 2, 3) and batch["img"].dtype == ember.int32
    x, n, flag, names = batch["meta"]
    assert (x.dtype, n.dtype, flag.dtype) == (ember.float64, ember.int64, ember.bool)
    assert names == ["s0", "s1", "s2", "s3"] and isinstance(batch["meta"], tuple)
    assert isinstance(batch["pt"], Point) and batch["pt"].x.dtype == ember.float32
    assert isinstance(batch["pt"].y, list) and batch["pt"].y[1].tolist() == [1, 2, 3, 4]
    if torch is not None:
        from torch.utils.data import default_collate as torch_collate
        ref = torch_collate([{**s, "t": torch.tensor(s["t"].numpy())} for s in samples])
        np.testing.assert_array_equal(batch["img"].numpy(), ref["img"].numpy())
        np.testing.assert_array_equal(batch["t"].numpy(), ref["t"].numpy())
        for ours, theirs in zip(batch["meta"][:3], ref["meta"][:3]):
            assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_default_collate_rejects_ragged_samples():
    with pytest.raises(DataError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(DataError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(DataError, match="default_collate"):
        default_collate([object(), object()])


def test_collate_keeps_autograd_through_stack():
    a = ember.ones(2, requires_grad=True)
    default_collate([a, a * 2]).sum().backward()
    assert a.grad.tolist() == [3.0, 3.0]


# -- datasets --------------------------------------------------------------------------------------------
def test_tensor_concat_subset_and_chain_datasets():
    ds = TensorDataset(ember.arange(4), np.arange(4) * 10)
    assert len(ds) == 4 and ds[2][0].item() == 2 and ds[2][1] == 20
    with pytest.raises(DataError, match="size mismatch"):
        TensorDataset(ember.arange(3), ember.arange(4))
    cat = ConcatDataset([[0, 1], [2, 3, 4]])
    assert len(cat) == 5 and [cat[i] for i in range(-5, 5)] == [0, 1, 2, 3, 4] * 2
    with pytest.raises(IndexError):
        cat[5]
    assert list(Subset(cat, [4, 0])) == [4, 0]

    class Stream(IterableDataset):
        def __iter__(self):
            return iter("ab")

    assert list(Stream() + Stream()) == ["a", "b", "a", "b"]
    with pytest.raises(DataError, match="IterableDataset"):
        ConcatDataset([Stream()])


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.34, 0.33, 0.33]])
def test_random_split_sizes_match_pytorch_and_repeat_with_a_seed(lengths):
    parts = random_split(range(10), lengths, generator=gen(5))
    again = random_split(range(10), lengths, generator=gen(5))
    assert [list(p) for p in parts] == [list(p) for p in again]
    assert sorted(i for p in parts for i in p) == list(range(10))
    if torch is not None:
        ref = torch.utils.data.random_split(range(10), lengths)
        assert [len(p) for p in parts] == [len(p) for p in ref]


def test_random_split_rejects_bad_lengths():
    with pytest.raises(DataError, match="does not equal the length"):
        random_split(range(10), [3, 3])


# -- samplers --------------------------------------------------------------------------------------------
def test_sequential_and_random_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    s = RandomSampler(range(50), generator=gen(0))
    first, second = list(s), list(s)
    assert sorted(first) == list(range(50)) and first != second  # a new permutation per pass
    assert list(RandomSampler(range(50), generator=gen(0))) == first
    long = list(RandomSampler(range(5), num_samples=12, generator=gen(1)))
    assert len(long) == 12 and sorted(long[:5]) == sorted(long[5:10]) == list(range(5))
    drawn = list(RandomSampler(range(3), replacement=True, num_samples=3000, generator=gen(2)))
    counts = np.bincount(drawn, minlength=3)
    assert abs(counts - 1000).max() < 5 * np.sqrt(1000 * 2 / 3)
    with pytest.raises(DataError, match="num_samples"):
        RandomSampler(range(3), num_samples=0)


def test_random_sampler_follows_the_default_seed():
    ember.manual_seed(7)
    a = list(RandomSampler(range(20)))
    ember.manual_seed(7)
    assert list(RandomSampler(range(20))) == a


def test_weighted_random_sampler_frequencies():
    weights = [1.0, 2.0, 0.0, 7.0]
    n = 20000
    counts = np.bincount(list(WeightedRandomSampler(weights, n, generator=gen(3))), minlength=4)
    p = np.array(weights) / sum(weights)
    assert counts[2] == 0
    assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1e-9)
    unique = list(WeightedRandomSampler(weights, 3, replacement=False, generator=gen(4)))
    assert sorted(unique) == [0, 1, 3]
    with pytest.raises(DataError, match="num_samples"):
        WeightedRandomSampler(weights, 0)


def test_subset_random_and_batch_samplers():
    sub = list(SubsetRandomSampler([10, 20, 30, 40], generator=gen(0)))
    assert sorted(sub) == [10, 20, 30, 40]
    assert list(BatchSampler(range(7), 3, drop_last=False)) == [[0, 1, 2], [3, 4, 5], [6]]
    kept = BatchSampler(range(7), 3, drop_last=True)
    assert list(kept) == [[0, 1, 2], [3, 4, 5]] and len(kept) == 2
    with pytest.raises(DataError, match="batch_size"):
        BatchSampler(range(7), 0, drop_last=False)


# -- DataLoader in the main process ----------------------------------------------------------------------
def test_loader_batches_and_drop_last():
    ds = TensorDataset(ember.arange(10), ember.arange(10) * 2.0)
    loader = DataLoader(ds, batch_size=4)
    batches = [(x.tolist(), y.tolist()) for x, y in loader]
    assert len(loader) == 3 and batches[2] == ([8, 9], [16.0, 18.0])
    dropped = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and len(list(dropped)) == 2
    single = list(DataLoader([np.ones(2), np.zeros(2)], batch_size=None))
    assert isinstance(single[0], ember.Tensor) and single[0].shape == (2,)


def test_shuffle_repeats_with_a_seed_and_changes_per_epoch():
    ds = TensorDataset(ember.arange(32))
    ember.manual_seed(0)
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    epoch1 = [b[0].tolist() for b in loader]
    epoch2 = [b[0].tolist() for b in loader]
    ember.manual_seed(0)
    assert [b[0].tolist() for b in loader] == epoch1 and epoch1 != epoch2
    assert sorted(sum(epoch1, [])) == list(range(32))
    g1 = [b[0].tolist() for b in DataLoader(ds, batch_size=8, shuffle=True, generator=gen(9))]
    assert g1 == [b[0].tolist() for b in DataLoader(ds, batch_size=8, shuffle=True, generator=gen(9))]


def test_loader_rejects_conflicting_options():
    ds = TensorDataset(ember.arange(4))
    cases = [dict(shuffle=True, sampler=SequentialSampler(ds)), dict(batch_sampler=[[0]], batch_size=2),
             dict(batch_size=None, drop_last=True), dict(num_workers=-1), dict(prefetch_factor=2),
             dict(persistent_workers=True), dict(timeout=-1)]
    for kwargs in cases:
        with pytest.raises(DataError, match="DataLoader"):
            DataLoader(ds, **kwargs)


# -- worker processes ------------------------------------------------------------------------------------
class Squares(Dataset):
    def __init__(self, n: int = 20, fail_at: int | None = None, delay: float = 0.0):
        self.n, self.fail_at, self.delay = n, fail_at, delay

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise ValueError(f"bad sample {i}")
        time.sleep(self.delay)
        return {"x": np.array([i, i * i]), "i": i}


class WhoAmI(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return info.id, info.seed, os.getpid(), ember.rand(1).item(), float(np.random.rand())


def test_workers_give_the_same_batches_in_order_as_the_main_process():
    ds = Squares(23, delay=0.001)
    plain = [(b["x"].tolist(), b["i"].tolist()) for b in DataLoader(ds, batch_size=3, shuffle=True,
                                                                     generator=gen(1))]
    it = iter(DataLoader(ds, batch_size=3, shuffle=True, generator=gen(1), num_workers=2, prefetch_factor=3))
    workers = list(it._workers)
    assert [(b["x"].tolist(), b["i"].tolist()) for b in it] == plain
    assert isinstance(plain[0], tuple) and get_worker_info() is None
    assert_reaped(workers)


def test_worker_seeds_differ_and_repeat_with_the_main_seed():
    def run():
        ember.manual_seed(11)
        return [tuple(t.tolist() for t in b) for b in DataLoader(WhoAmI(), batch_size=2, num_workers=2)]

    first = run()
    ids, seeds, pids, ember_draws, numpy_draws = (sum((b[k] for b in first), []) for k in range(5))
    assert ids == [0, 0, 1, 1, 0, 0, 1, 1] and len(set(pids)) == 2
    assert seeds[2] == seeds[0] + 1
    assert ember_draws[0] != ember_draws[2] and numpy_draws[0] != numpy_draws[2]
    again = run()
    assert [b[3] for b in again] == [b[3] for b in first] and [b[4] for b in again] == [b[4] for b in first]


def test_worker_exception_surfaces_with_its_traceback_and_workers_stop():
    it = iter(DataLoader(Squares(12, fail_at=5), batch_size=2, num_workers=2))
    workers = list(it._workers)
    with pytest.raises(WorkerError) as info:
        list(it)
    text = str(info.value)
    assert "worker 0" in text and "ValueError" in text and "bad sample 5" in text
    assert "Traceback" in text and "__getitem__" in text
    assert info.value.worker_id == 0 and info.value.exc_type == "ValueError"
    assert_reaped(workers)


def test_no_leaked_processes_after_exhaustion_or_deletion():
    loader = DataLoader(Squares(40), batch_size=2, num_workers=2)
    it = iter(loader)
    workers = list(it._workers)
    next(it)
    del it
    assert_reaped(workers)
    it = iter(loader)
    workers = list(it._workers)
    assert len(list(it)) == 20
    assert_reaped(workers)


def test_persistent_workers_are_reused_across_epochs():
    class Pid(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return os.getpid()

    loader = DataLoader(Pid(), batch_size=2, num_workers=2, persistent_workers=True)
    epoch1 = {p for b in loader for p in b.tolist()}
    partial = iter(loader)
    next(partial)  # an unfinished epoch: the next one must not see its batches
    epoch2 = [p for b in loader for p in b.tolist()]
    assert set(epoch2) == epoch1 and len(epoch1) == 2 and len(epoch2) == 6
    workers = list(loader._iterator._workers)
    del loader, partial
    assert_reaped(workers)


def test_iterable_dataset_with_workers_and_sharding():
    class Numbers(IterableDataset):
        def __init__(self, shard: bool):
            self.shard = shard

        def __iter__(self):
            info = get_worker_info()
            if not self.shard or info is None:
                return iter(range(10))
            return iter(range(info.id, 10, info.num_workers))

    sharded = [v for b in DataLoader(Numbers(True), batch_size=3, num_workers=2) for v in b.tolist()]
    assert sorted(sharded) == list(range(10))
    copied = [v for b in DataLoader(Numbers(False), batch_size=4, num_workers=2) for v in b.tolist()]
    assert sorted(copied) == sorted(list(range(10)) * 2)
    with pytest.raises(DataError, match="shuffle"):
        DataLoader(Numbers(True), shuffle=True)


def test_worker_init_fn_and_timeout():
    class Tagged(Dataset):
        tag = -1

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return self.tag

    def init(worker_id):
        get_worker_info().dataset.tag = 100 + worker_id

    tags = [t for b in DataLoader(Tagged(), batch_size=1, num_workers=2, worker_init_fn=init) for t in b.tolist()]
    assert tags == [100, 101, 100, 101]
    it = iter(DataLoader(Squares(4, delay=0.6), batch_size=1, num_workers=2, timeout=0.1))
    workers = list(it._workers)
    with pytest.raises(DataLoaderError, match="timed out after 0.1 seconds"):
        next(it)
    assert_reaped(workers)


def test_a_worker_that_dies_is_reported():
    class Dies(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            os._exit(3)

    it = iter(DataLoader(Dies(), batch_size=1, num_workers=2))
    workers = list(it._workers)
    with pytest.raises(DataLoaderError, match="exited unexpectedly with exit code 3"):
        next(it)
    assert_reaped(workers)


# -- transforms ------------------------------------------------------------------------------------------
def image(c=3, h=5, w=6, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def test_to_tensor_and_normalize_match_torch_formulas():
    img = image()
    t = T.ToTensor()(img)
    expected = img.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    assert t.dtype == ember.float32 and t.shape == (3, 5, 6)
    np.testing.assert_array_equal(t.numpy(), expected)
    assert T.ToTensor()(img[:, :, 0]).shape == (1, 5, 6)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    out = T.Normalize(mean, std)(t)
    if torch is not None:
        ref = (torch.from_numpy(expected) - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
        np.testing.assert_array_equal(out.numpy(), ref.numpy())
    assert isinstance(T.Normalize(mean, std)(expected), np.ndarray)
    with pytest.raises(DataError, match="Normalize"):
        T.Normalize([0.0, 0.0], [1.0, 1.0])(t)
    with pytest.raises(DataError, match="ToTensor"):
        T.ToTensor()(t)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_random_crop_is_a_window_of_the_padded_image_at_the_drawn_offsets(mode):
    chw = image().transpose(2, 0, 1)
    crop = T.RandomCrop((4, 5), padding=(1, 2), fill=9, padding_mode=mode, generator=gen(3))
    padded = np.pad(chw, [(0, 0), (2, 2), (1, 1)], mode=mode, **({"constant_values": 9} if mode == "constant"
                                                                   else {}))
    g = gen(3)
    for _ in range(5):
        top, left = T.randint(6, g), T.randint(4, g)
        np.testing.assert_array_equal(crop(chw), padded[:, top:top + 4, left:left + 5])


def test_random_crop_options_and_errors():
    chw = np.ones((2, 3, 3), dtype=np.float32)
    out = T.RandomCrop(5, pad_if_needed=True, fill=(7, 8))(chw)
    assert out.shape == (2, 5, 5) and set(np.unique(out[0])) <= {1.0, 7.0} and set(np.unique(out[1])) <= {1.0, 8.0}
    assert np.array_equal(T.RandomCrop(3)(chw), chw)  # the whole image: no draw needed
    with pytest.raises(DataError, match="larger than"):
        T.RandomCrop(4)(chw)
    with pytest.raises(DataError, match="padding_mode"):
        T.RandomCrop(2, padding_mode="wrap")


def test_flips_pad_center_crop_compose_and_lambda():
    x = np.arange(12.0).reshape(1, 3, 4)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(x) is x
    np.testing.assert_array_equal(T.RandomVerticalFlip(p=1.0)(ember.tensor(x)).numpy(), x[:, ::-1])
    flips = [T.RandomHorizontalFlip(generator=g)(x) is not x for g in [gen(0)] for _ in range(400)]
    assert 150 < sum(flips) < 250
    np.testing.assert_array_equal(T.Pad((1, 2), padding_mode="reflect")(x), np.pad(x, [(0, 0), (2, 2), (1, 1)],
                                                                                    mode="reflect"))
    np.testing.assert_array_equal(T.CenterCrop(2)(x), x[:, 0:2, 1:3])
    pipeline = T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2)])
    assert pipeline(np.full((1, 1, 1), 255, np.uint8)).tolist() == [[[2.0]]]


def test_random_transforms_repeat_with_the_default_seed():
    pipeline = T.Compose([T.ToTensor(), T.RandomCrop(5, padding=2), T.RandomHorizontalFlip()])
    img = image(h=5, w=5)
    ember.manual_seed(4)
    first = [pipeline(img).numpy() for _ in range(10)]
    ember.manual_seed(4)
    second = [pipeline(img).numpy() for _ in range(10)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(first[0], a) for a in first[1:])
