"""Every primitive, grouped by kind. Importing this package registers them all."""
