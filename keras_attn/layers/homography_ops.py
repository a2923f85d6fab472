"""Closed-form homography math, shared by the homography layers and the data pipeline.

`HomographyUpdate`, `HomographyFlow` and `HomographyOutputs` fit, apply and export homographies
with these functions, and `keras_attn.data.alignment` makes its training pairs with the same
closed form (`square_to_quad`), so the model and its data share one convention. Written with
`keras.ops`, using only ops that convert to TFLite builtins.

Convention (the model cards' and `keras-attn predict`'s): the aligner's output `homography` maps
**moving** pixel coordinates to **fixed** ones. Internally the layers carry `G`, its inverse, in
normalised coordinates: `G` maps a fixed-grid point to where it is found in the moving image, which
is what backward warping needs.

Homographies are `(B, 3, 3)` tensors acting on column vectors `(x, y, 1)`. Inside the aligner they
act on normalised coordinates (`u = 2 x / (W - 1) - 1`, pixel centres at integer `x`), which keeps
the least-squares systems well conditioned in float32; `pixel_to_normalised` converts.

No `linalg.solve` / `inv` (MatrixSolve and MatrixInverse are not TFLite builtins: they would
need the Flex delegate, which the Python LiteRT runtime lacks): the 8x8 normal equations are
solved by unrolled Gauss-Jordan elimination (they are symmetric positive definite, so no pivoting
is needed), and 3x3 inverses use the adjugate.
"""

from __future__ import annotations

from keras import ops

# Corners of a patch in normalised coordinates, clockwise from top-left: (x, y).
UNIT_CORNERS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))
_IDENTITY_PARAMS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


def identity(batch, dtype="float32"):
    """`(batch, 3, 3)` identity matrices (`batch` may be a symbolic size)."""
    eye = ops.eye(3, dtype=dtype)[None]
    return ops.tile(eye, (batch, 1, 1))


def from_params(params):
    """`(B, 8)` parameters `h00..h21` -> `(B, 3, 3)` matrices with `h22 = 1`."""
    ones = ops.ones_like(params[:, :1])
    return ops.reshape(ops.concatenate([params, ones], axis=-1), (-1, 3, 3))


def normalise(matrix):
    """Scales `(B, 3, 3)` homographies so that `H[2, 2] == 1`."""
    return matrix / matrix[:, 2:3, 2:3]


def apply(matrix, points):
    """Maps `(B, N, 2)` points by `(B, 3, 3)` homographies (projective division included)."""
    return ops.stack(_apply_xy(matrix, points[..., 0], points[..., 1]), axis=-1)


def invert(matrix):
    """Inverse of `(B, 3, 3)` matrices via the adjugate, normalised so that `H[2, 2] == 1`."""
    m = [[matrix[:, i, j] for j in range(3)] for i in range(3)]

    def cofactor(i, j):
        rows = [r for r in range(3) if r != i]
        cols = [c for c in range(3) if c != j]
        det = m[rows[0]][cols[0]] * m[rows[1]][cols[1]] - m[rows[0]][cols[1]] * m[rows[1]][cols[0]]
        return det if (i + j) % 2 == 0 else -det

    # adjugate = transpose of the cofactor matrix; the determinant cancels after normalising
    adjugate = ops.stack(
        [ops.stack([cofactor(j, i) for j in range(3)], axis=-1) for i in range(3)], axis=-2
    )
    return normalise(adjugate)


def solve_spd(matrix, rhs):
    """Solves `(B, n, n) x = (B, n)` for symmetric positive definite matrices.

    Unrolled Gauss-Jordan elimination without pivoting (stable for SPD systems): slices,
    multiplies and subtractions only, so it converts to TFLite builtins.
    """
    n = matrix.shape[-1]
    augmented = ops.concatenate([matrix, rhs[..., None]], axis=-1)
    eye = ops.eye(n, dtype=matrix.dtype)
    for k in range(n):
        pivot_row = augmented[:, k, :] / augmented[:, k, k : k + 1]
        factors = augmented[:, :, k] - eye[k][None]  # row k: replace itself by pivot_row
        augmented = augmented - factors[:, :, None] * pivot_row[:, None, :]
    return augmented[:, :, n]


def robust_fit(source, target, weights, regularization=1e-3, iterations=4, scale=0.1):
    """`fit` made robust to outlier matches by iteratively reweighted least squares.

    Starting from the weighted least-squares fit, each iteration multiplies the weights by the
    Cauchy weight `1 / (1 + (r / scale)^2)` of every point's residual `r` under the current
    fit (`scale` in normalised units: 0.1 is ~6 px on a 128-pixel image), then refits. Still
    only slices and arithmetic, so it converts to TFLite builtins and stays differentiable.
    The design matrix depends on the points only, so it is built once for all the refits.
    """
    x, y = source[..., 0], source[..., 1]
    u, v = target[..., 0], target[..., 1]
    design = _design(x, y, u, v)
    matrix = _solve_weighted(design, weights, regularization)
    for _ in range(iterations):
        mapped_x, mapped_y = _apply_xy(matrix, x, y)
        residual = ops.square(mapped_x - u) + ops.square(mapped_y - v)
        robust = weights / (1.0 + residual / (scale * scale))
        matrix = _solve_weighted(design, robust, regularization)
    return matrix


def robust_translation(source, target, weights, iterations=4, scale=0.05):
    """Translation-only homographies `(B, 3, 3)`: the IRLS (Cauchy) weighted mean displacement.

    Two degrees of freedom are far more robust to outlier matches than eight, so the first,
    global iteration of the aligner estimates only this (a projective fit to coarse matches
    with many outliers can degenerate); later, local iterations fit full homographies.
    """
    displacement = target - source
    weights = ops.expand_dims(weights, -1)  # not [..., None]: no TFLite builtin for that

    def mean(w):
        return ops.sum(displacement * w, axis=1) / (ops.sum(w, axis=1) + 1e-6)

    shift = mean(weights)
    for _ in range(iterations):
        residual = ops.sum(ops.square(displacement - shift[:, None]), axis=-1, keepdims=True)
        shift = mean(weights / (1.0 + residual / (scale * scale)))
    return translation(shift)


def translation(shift):
    """`(B, 2)` shifts `(dx, dy)` -> `(B, 3, 3)` translation homographies."""
    zeros = ops.zeros_like(shift[:, 0])
    ones = ops.ones_like(zeros)
    rows = [ones, zeros, shift[:, 0], zeros, ones, shift[:, 1], zeros, zeros, ones]
    return ops.reshape(ops.stack(rows, axis=-1), (-1, 3, 3))


def fit(source, target, weights, regularization=1e-3):
    """Weighted least-squares homography `H` with `H(source) ~ target` (DLT, `h22 = 1`).

    Args:
        source, target: `(B, N, 2)` corresponding points (normalised coordinates).
        weights: `(B, N)` non-negative weights, normalised to sum to one per example.
        regularization: Tikhonov weight pulling the solution towards the identity, which keeps
            the system solvable (and the update small) when the matches are not confident.

    Returns:
        `(B, 3, 3)` homographies.
    """
    design = _design(source[..., 0], source[..., 1], target[..., 0], target[..., 1])
    return _solve_weighted(design, weights, regularization)


def _design(x, y, u, v):
    """`(B, 9, 2N)`: the 8 DLT columns of every point's two equations, then their targets.

    Row-major in the point axis (stacked on axis 1), so that the normal equations and their
    right-hand side come out of one matrix product with no transposed left operand.
    """
    zeros = ops.zeros_like(x)
    ones = ops.ones_like(x)
    rows_u = ops.stack([x, y, ones, zeros, zeros, zeros, -x * u, -y * u, u], axis=1)
    rows_v = ops.stack([zeros, zeros, zeros, x, y, ones, -x * v, -y * v, v], axis=1)
    return ops.concatenate([rows_u, rows_v], axis=2)


def _solve_weighted(design, weights, regularization):
    """The weighted DLT solution for a `_design` matrix and `(B, N)` weights."""
    weights = weights / (ops.sum(weights, axis=-1, keepdims=True) + 1e-6)
    weights = ops.expand_dims(ops.concatenate([weights, weights], axis=-1), 1)
    # (B, 9, 9): the 8x8 normal matrix A^T W A and, in its last column, A^T W b
    moments = ops.einsum("bin,bjn->bij", design * weights, design)
    normal = moments[:, :8, :8]
    rhs = moments[:, :8, 8]
    eye = ops.eye(8, dtype=normal.dtype)
    prior = ops.convert_to_tensor(_IDENTITY_PARAMS, dtype=normal.dtype)
    params = solve_spd(normal + regularization * eye[None], rhs + regularization * prior[None])
    return from_params(params)


def _apply_xy(matrix, x, y):
    """`apply` on coordinates held as two `(B, N)` tensors; returns the two mapped ones."""

    def row(i):
        return matrix[:, i : i + 1, 0] * x + matrix[:, i : i + 1, 1] * y + matrix[:, i : i + 1, 2]

    w = row(2)
    return row(0) / w, row(1) / w


def square_to_quad(corners):
    """Homographies mapping the unit square `(0,0),(1,0),(1,1),(0,1)` onto `(B, 4, 2)` corners.

    Closed form of Heckbert (1989), "Fundamentals of Texture Mapping and Image Warping", 2.2.3.
    """
    x0, x1, x2, x3 = (corners[:, i, 0] for i in range(4))
    y0, y1, y2, y3 = (corners[:, i, 1] for i in range(4))
    dx1, dx2, dx3 = x1 - x2, x3 - x2, x0 - x1 + x2 - x3
    dy1, dy2, dy3 = y1 - y2, y3 - y2, y0 - y1 + y2 - y3
    det = dx1 * dy2 - dx2 * dy1
    g = (dx3 * dy2 - dx2 * dy3) / det
    h = (dx1 * dy3 - dx3 * dy1) / det
    a, b, c = x1 - x0 + g * x1, x3 - x0 + h * x3, x0
    d, e, f = y1 - y0 + g * y1, y3 - y0 + h * y3, y0
    ones = ops.ones_like(a)
    return ops.reshape(ops.stack([a, b, c, d, e, f, g, h, ones], axis=-1), (-1, 3, 3))


def pixel_to_normalised(height, width, dtype="float32"):
    """`(3, 3)` matrix taking pixel coordinates to normalised ones (`[-1, 1]` corner to corner)."""
    sx = 2.0 / (float(width) - 1.0)
    sy = 2.0 / (float(height) - 1.0)
    return ops.convert_to_tensor([[sx, 0.0, -1.0], [0.0, sy, -1.0], [0.0, 0.0, 1.0]], dtype=dtype)


def normalised_to_pixel(height, width, dtype="float32"):
    """Inverse of `pixel_to_normalised`."""
    return ops.convert_to_tensor(
        [
            [(float(width) - 1.0) / 2.0, 0.0, (float(width) - 1.0) / 2.0],
            [0.0, (float(height) - 1.0) / 2.0, (float(height) - 1.0) / 2.0],
            [0.0, 0.0, 1.0],
        ],
        dtype=dtype,
    )


def to_pixels(matrix, height, width):
    """Normalised-coordinate homographies -> pixel-coordinate ones, `H[2, 2] == 1`."""
    forward = pixel_to_normalised(height, width, matrix.dtype)[None]
    backward = normalised_to_pixel(height, width, matrix.dtype)[None]
    return normalise(ops.matmul(ops.matmul(backward, matrix), forward))


def grid(height, width, stride=1, dtype="float32"):
    """Normalised `(h * w, 2)` coordinates `(x, y)` of the cell centres of a stride-`stride` map.

    Cell `j` of a map downsampled by `stride` covers pixels `[j s, (j + 1) s)`; its centre is
    pixel `(j + 0.5) s - 0.5`, the convention of half-pixel-centre resizing.
    """
    rows = height // stride
    cols = width // stride
    xs = (ops.arange(cols, dtype=dtype) + 0.5) * stride - 0.5
    ys = (ops.arange(rows, dtype=dtype) + 0.5) * stride - 0.5
    xs = 2.0 * xs / (float(width) - 1.0) - 1.0
    ys = 2.0 * ys / (float(height) - 1.0) - 1.0
    gx = ops.tile(xs[None, :], (rows, 1))
    gy = ops.tile(ys[:, None], (1, cols))
    return ops.reshape(ops.stack([gx, gy], axis=-1), (rows * cols, 2))
