//! 2x2 pooling with stride 2 over `[N, C, H, W]` -> `[N, C, H/2, W/2]`
//! (an odd last row or column is dropped).
//!
//! - average: `y = (x00 + x01 + x10 + x11) / 4`
//! - max: `y = max(...)`, with the winner's position (0..4, row-major in the window)
//!   kept in `argmax` for the backward pass.

/// Geometry of a 2x2, stride-2 pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolShape {
    pub batch: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl PoolShape {
    pub fn out_h(&self) -> usize {
        self.h / 2
    }
    pub fn out_w(&self) -> usize {
        self.w / 2
    }
    pub fn x_len(&self) -> usize {
        self.batch * self.c * self.h * self.w
    }
    pub fn y_len(&self) -> usize {
        self.batch * self.c * self.out_h() * self.out_w()
    }
    /// Number of maps (`batch * c`).
    pub fn maps(&self) -> usize {
        self.batch * self.c
    }
}

/// Calls `f(map, out_index, [four input indices])` for every window, in order.
/// Indices are into the flat `x` and `y`; `map` is `n * C + c`.
pub(crate) fn for_each_window(s: &PoolShape, mut f: impl FnMut(usize, usize, [usize; 4])) {
    let (oh, ow) = (s.out_h(), s.out_w());
    for m in 0..s.maps() {
        for p in 0..oh {
            for q in 0..ow {
                let top = m * s.h * s.w + 2 * p * s.w + 2 * q;
                f(
                    m,
                    m * oh * ow + p * ow + q,
                    [top, top + 1, top + s.w, top + s.w + 1],
                );
            }
        }
    }
}

fn check(s: &PoolShape, x: usize, y: usize) {
    assert_eq!(
        (x, y),
        (s.x_len(), s.y_len()),
        "pooling: slice lengths do not match the shape"
    );
}

/// Average pooling forward.
pub fn avg_forward(s: &PoolShape, x: &[f32], y: &mut [f32]) {
    check(s, x.len(), y.len());
    for_each_window(s, |_, o, i| y[o] = 0.25 * (x[i[0]] + x[i[1]] + x[i[2]] + x[i[3]]));
}

/// Average pooling backward: each input of a window gets a quarter of its gradient.
pub fn avg_x_backward(s: &PoolShape, dy: &[f32], dx: &mut [f32]) {
    avg_spread(s, dy, dx, 0.25);
}

/// Average pooling second derivatives: the weights 1/4 enter squared, 1/16.
pub fn avg_x_backward_second(s: &PoolShape, d2y: &[f32], d2x: &mut [f32]) {
    avg_spread(s, d2y, d2x, 0.0625);
}

fn avg_spread(s: &PoolShape, dy: &[f32], dx: &mut [f32], factor: f32) {
    check(s, dx.len(), dy.len());
    dx.fill(0.0);
    for_each_window(s, |_, o, i| i.iter().for_each(|&j| dx[j] = factor * dy[o]));
}

/// Max pooling forward; `argmax[o]` records which of the 4 inputs won (first on ties).
pub fn max_forward(s: &PoolShape, x: &[f32], y: &mut [f32], argmax: &mut [u8]) {
    check(s, x.len(), y.len());
    assert_eq!(argmax.len(), y.len());
    for_each_window(s, |_, o, i| {
        let mut best = 0;
        for k in 1..4 {
            if x[i[k]] > x[i[best]] {
                best = k;
            }
        }
        y[o] = x[i[best]];
        argmax[o] = best as u8;
    });
}

/// Max pooling backward: the gradient goes to the window's winner only. The same
/// routing serves second derivatives (the winner's weight is 1, and 1^2 = 1).
pub fn max_x_backward(s: &PoolShape, argmax: &[u8], dy: &[f32], dx: &mut [f32]) {
    check(s, dx.len(), dy.len());
    assert_eq!(argmax.len(), dy.len());
    dx.fill(0.0);
    for_each_window(s, |_, o, i| dx[i[argmax[o] as usize]] = dy[o]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_4x4() {
        let s = PoolShape {
            batch: 1,
            c: 1,
            h: 4,
            w: 4,
        };
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut y = [0.0; 4];
        avg_forward(&s, &x, &mut y);
        assert_eq!(y, [2.5, 4.5, 10.5, 12.5]);
        let mut am = [0u8; 4];
        max_forward(&s, &x, &mut y, &mut am);
        assert_eq!(y, [5.0, 7.0, 13.0, 15.0]);
        assert_eq!(am, [3; 4]);
        let mut dx = [0.0; 16];
        max_x_backward(&s, &am, &[1.0, 2.0, 3.0, 4.0], &mut dx);
        assert_eq!(dx[5], 1.0);
        assert_eq!(dx[15], 4.0);
        assert_eq!(dx.iter().sum::<f32>(), 10.0);
    }

    #[test]
    fn odd_sizes_drop_the_last_row_and_column() {
        let s = PoolShape {
            batch: 1,
            c: 1,
            h: 3,
            w: 3,
        };
        let x = [1.0, 1.0, 9.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0];
        let mut y = [0.0];
        avg_forward(&s, &x, &mut y);
        assert_eq!(y, [1.0]);
    }
}
