"""Synthetic motion vectors and padded frames for the reader's tests (shared by
test_video_fast and test_video_reads; a helper module, not a test module, since the
name ``tests`` is shadowed by lava's own package)."""
import numpy as np

DT = [("source", "i4"), ("w", "u1"), ("h", "u1"), ("src_x", "i2"), ("src_y", "i2"),
      ("dst_x", "i2"), ("dst_y", "i2"), ("motion_x", "i4"), ("motion_y", "i4"),
      ("motion_scale", "u2")]


def random_vectors(rng, h, w, reach):
    """Per 16x16 macroblock, as MPEG-4 exports them: one 16x16 vector, four 8x8 ones
    (4MV), or none (intra); with runs of equal vectors, zero ones, and vectors whose
    source leaves the frame, ``reach`` px at most."""
    vecs = []
    for by in range(0, h, 16):
        for bx in range(0, w, 16):
            u = rng.random()
            if u < 0.15:
                continue  # intra block: no vector
            if u < 0.3:  # 4MV: four 8x8 blocks
                for oy in (0, 8):
                    for ox in (0, 8):
                        dx, dy = rng.integers(-reach, reach + 1, 2)
                        vecs.append((int(dx), int(dy), bx + ox + 4, by + oy + 4, 8))
                continue
            if u < 0.5:
                dx = dy = 0
            elif u < 0.7 and vecs:  # a run: the same vector as the block before
                dx, dy = vecs[-1][:2]
            else:
                dx, dy = rng.integers(-reach, reach + 1, 2)
            vecs.append((int(dx), int(dy), bx + 8, by + 8, 16))
    v = np.zeros(len(vecs), DT)
    for i, (dx, dy, cx, cy, size) in enumerate(vecs):
        v[i] = (-1, size, size, cx - dx, cy - dy, cx, cy, -2 * dx, -2 * dy, 2)
    return v


def padded(img, pad):
    """The same pixels in a buffer whose rows are ``pad`` bytes longer, as a view."""
    h, w, _ = img.shape
    buf = np.zeros((h, 3 * w + pad), np.uint8)
    buf[:, :3 * w] = img.reshape(h, -1)
    view = buf[:, :3 * w].reshape(h, w, 3)
    assert not view.flags.c_contiguous and view.strides == (3 * w + pad, 3, 1)
    return view
