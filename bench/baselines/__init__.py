"""Reference implementations that product code replaced, kept only so benchmarks can compare against them."""
