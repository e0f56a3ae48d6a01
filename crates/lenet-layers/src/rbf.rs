//! LeNet-5's output layer: ten Euclidean radial basis function units with fixed
//! parameter vectors, each a stylised 7x12 bitmap of its digit.
//!
//! `y[n, i] = sum_j (x[n, j] - c[i, j])^2` — a *penalty*: the predicted class is
//! the one with the smallest `y`.

use tensor_ops::interleaved::Lanes;

use crate::layer::Layer;
use crate::param::Param;

/// Bitmap width.
pub const BITMAP_COLS: usize = 7;
/// Bitmap height.
pub const BITMAP_ROWS: usize = 12;
/// Values per bitmap (F6's width).
pub const BITMAP_LEN: usize = BITMAP_COLS * BITMAP_ROWS;

/// The ten bitmaps as the NumPy original transcribed them from the paper's figure
/// (`#` = +1, `.` = -1), digit 0 to 9 left to right, read row by row.
/// The top rows of 0, 2, 4 and 5 (a bar over a blank row) are as in that source.
pub const BITMAPS_ASCII: &str = "
.#####.  ...##..  .#####.  #######  .#####.  .#####.  ..####.  #######  .#####.  .#####.
.......  ..###..  .......  .....##  .......  .......  .##....  .....##  ##...##  ##..###
..###..  .####..  .#####.  ....##.  .......  #######  ##.....  .....##  ##...##  ##...##
.##.##.  ...##..  ##...##  ...##..  .##..##  ##.....  ##.....  ....##.  ##...##  ##...##
##...##  ...##..  #....##  ..####.  .##..##  ##.....  ######.  ...##..  .#####.  ##..###
##...##  ...##..  ....##.  .....##  ###..##  .####..  ###..##  ...##..  ##...##  .######
##...##  ...##..  ..###..  .....##  ##...##  ..####.  ##...##  ..##...  ##...##  .....##
##...##  ...##..  .##....  .....##  ##...##  .....##  ##...##  ..##...  ##...##  .....##
.##.##.  ...##..  ##.....  ##...##  ##..###  ##...##  ###..##  ..##...  ##...##  ....##.
..###..  .######  #######  .#####.  .######  .#####.  .#####.  ..##...  .#####.  .####..
.......  .......  .......  .......  .....##  .......  .......  .......  .......  .......
.......  .......  .......  .......  .....##  .......  .......  .......  .......  .......
";

/// The bitmaps as `[10][84]` values of +1 / -1.
pub fn bitmaps() -> Vec<[f32; BITMAP_LEN]> {
    let mut out = vec![[0.0f32; BITMAP_LEN]; 10];
    for (r, line) in BITMAPS_ASCII.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        for (digit, cells) in line.split_whitespace().enumerate() {
            for (c, ch) in cells.chars().enumerate() {
                out[digit][r * BITMAP_COLS + c] = if ch == '#' { 1.0 } else { -1.0 };
            }
        }
    }
    out
}

/// Euclidean RBF output units with fixed centres `[classes, in_f]`.
#[derive(Clone)]
pub struct Rbf {
    name: String,
    in_f: usize,
    classes: usize,
    /// `[centers [classes, in_f]]`, fixed.
    fixed: Vec<Param>,
}

impl Rbf {
    /// The paper's output layer: ten units centred on the digit bitmaps.
    pub fn lenet(name: &str) -> Self {
        let mut centers = Param::zeros(format!("{name}.centers"), &[10, BITMAP_LEN]);
        centers.value = bitmaps().iter().flat_map(|b| b.iter().copied()).collect();
        Rbf {
            name: name.into(),
            in_f: BITMAP_LEN,
            classes: 10,
            fixed: vec![centers],
        }
    }

    /// The fixed centres, `[classes, in_f]`.
    pub fn centers(&self) -> &[f32] {
        &self.fixed[0].value
    }
}

impl Layer for Rbf {
    fn name(&self) -> &str {
        &self.name
    }
    fn in_len(&self) -> usize {
        self.in_f
    }
    fn out_len(&self) -> usize {
        self.classes
    }
    fn out_shape(&self) -> Vec<usize> {
        vec![self.classes]
    }

    fn forward(&mut self, _batch: usize, x: &[f32], y: &mut [f32]) {
        tensor_ops::rbf::forward(x, &self.fixed[0].value, self.in_f, y);
    }

    /// [`Layer::forward`]'s sums lane by lane: the same bits.
    fn forward_interleaved(&mut self, x: &[Lanes], y: &mut [Lanes], _count: usize) {
        tensor_ops::rbf::forward_interleaved(x, &self.fixed[0].value, y);
    }

    /// `dx[j] = sum_i dy[i] * 2 (x[j] - c[i, j])`; the centres are fixed.
    fn backward(&mut self, _batch: usize, x: &[f32], _y: &[f32], dy: &[f32], dx: Option<&mut [f32]>) {
        let Some(dx) = dx else { return };
        tensor_ops::rbf::x_backward(x, &self.fixed[0].value, self.in_f, dy, dx);
    }

    /// The paper takes the output's second derivative directly: `d2/dx2 (x - c)^2 = 2`,
    /// so `d2x[j] = 2 * sum_i d2y[i]`, where the loss supplies in `d2y` the weight of
    /// each penalty in the error (1 for the correct class).
    fn backward_second(
        &mut self,
        _batch: usize,
        _x: &[f32],
        _y: &[f32],
        d2y: &[f32],
        d2x: Option<&mut [f32]>,
    ) {
        let Some(d2x) = d2x else { return };
        for (d2y_row, d2x_row) in d2y
            .chunks_exact(self.classes)
            .zip(d2x.chunks_exact_mut(self.in_f))
        {
            d2x_row.fill(2.0 * d2y_row.iter().sum::<f32>());
        }
    }

    fn fixed_params(&self) -> &[Param] {
        &self.fixed
    }
    fn fixed_params_mut(&mut self) -> &mut [Param] {
        &mut self.fixed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_have_84_cells_and_are_pairwise_distinct() {
        let b = bitmaps();
        assert_eq!(b.len(), 10);
        let ink: Vec<usize> = b
            .iter()
            .map(|m| m.iter().filter(|&&v| v == 1.0).count())
            .collect();
        assert_eq!(
            ink,
            vec![35, 27, 33, 32, 41, 35, 39, 25, 43, 39],
            "ink cells as in the shared doc"
        );
        for m in &b {
            assert_eq!(m.len(), 84);
            assert!(m.iter().all(|&v| v == 1.0 || v == -1.0));
        }
        let mut closest = (84, 0, 0);
        for i in 0..10 {
            for j in i + 1..10 {
                let diff = b[i].iter().zip(&b[j]).filter(|(a, c)| a != c).count();
                assert!(diff > 0, "{i} and {j} are equal");
                closest = closest.min((diff, i, j));
            }
        }
        assert_eq!(closest, (12, 6, 8), "the closest pair is 6 and 8, 12 cells apart");
        // every line of the table has ten 7-wide bitmaps
        for line in BITMAPS_ASCII.lines().filter(|l| !l.trim().is_empty()) {
            assert!(line.split_whitespace().all(|c| c.len() == 7));
            assert_eq!(line.split_whitespace().count(), 10);
        }
    }

    #[test]
    fn penalty_is_zero_at_the_centre() {
        let mut rbf = Rbf::lenet("output");
        let x: Vec<f32> = bitmaps()[3].to_vec();
        let mut y = vec![0.0; 10];
        rbf.forward(1, &x, &mut y);
        assert_eq!(y[3], 0.0);
        assert!(y.iter().enumerate().all(|(i, &v)| i == 3 || v > 0.0));
    }
}
