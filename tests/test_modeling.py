"""genpost.learned.modeling: the one place 4:2:0 samples become model tensors (8/10-bit, odd sizes) and tiling."""

import numpy as np
import pytest

from genpost.learned.modeling import pack, qp_value, run_tiled, to_samples, unpack


@pytest.mark.parametrize(("bits", "height", "width"), [(8, 64, 96), (10, 37, 51)])
def test_pack_unpack_round_trips_samples(bits, height, width):
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    ch, cw = (height + 1) // 2, (width + 1) // 2
    y, u, v = (rng.integers(0, top + 1, s).astype(dtype) for s in ((height, width), (ch, cw), (ch, cw)))
    x = pack(y, u, v, top, qp=42)
    assert x.shape == (7, ch, cw) and x.dtype == np.float32
    assert np.all(x[6] == qp_value(42)) and qp_value(42) == 1.0
    assert pack(y, u, v, top).shape == (6, ch, cw)
    back = [to_samples(p, top, dtype) for p in unpack(x[:6], height, width)]
    for a, b in zip((y, u, v), back):
        assert b.dtype == dtype and np.array_equal(a, b)


def test_to_samples_clips_to_the_bit_depth():
    assert to_samples(np.array([-0.2, 0.5, 1.3]), 1023, np.uint16).tolist() == [0, 512, 1023]


def test_run_tiled_equals_one_pass_when_the_halo_covers_the_receptive_field():
    rng = np.random.default_rng(0)
    x = rng.random((2, 70, 45), dtype=np.float32)

    def box3(t):  # receptive radius 1
        p = np.pad(t, ((0, 0), (1, 1), (1, 1)), mode="edge")
        return sum(p[:, i : i + t.shape[1], j : j + t.shape[2]] for i in range(3) for j in range(3)) / 9

    whole = box3(x)
    assert np.allclose(run_tiled(box3, x, 2, tile=16, halo=1), whole, atol=1e-6)
    assert not np.allclose(run_tiled(box3, x, 2, tile=16, halo=0), whole, atol=1e-6)  # the halo matters


def test_run_tiled_pads_to_the_stride_of_a_strided_network_and_crops_back():
    x = np.random.default_rng(1).random((1, 37, 51), dtype=np.float32)

    def pool_up(t):  # stride 2: only defined on even sizes, receptive radius 2 on the 2x2 grid
        assert t.shape[1] % 2 == 0 and t.shape[2] % 2 == 0, t.shape
        p = t.reshape(1, t.shape[1] // 2, 2, t.shape[2] // 2, 2).mean((2, 4))
        return np.repeat(np.repeat(p, 2, 1), 2, 2)

    whole = run_tiled(pool_up, x, 1, tile=64, halo=0, multiple=2)
    assert whole.shape == x.shape
    padded = np.pad(x, ((0, 0), (0, 1), (0, 1)), mode="edge")
    assert np.allclose(whole, pool_up(padded)[:, :37, :51])
    assert np.allclose(run_tiled(pool_up, x, 1, tile=8, halo=2, multiple=2), whole)
