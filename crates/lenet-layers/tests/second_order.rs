//! SDLM's h_kk come from the layers' `backward_second` passes. On a tiny network
//! whose hidden layers are one unit wide (so the diagonal approximation drops no
//! cross terms) the pass must give exactly the Gauss-Newton diagonal
//! `h_kk = c * (dy/dw_k)^2` of the loss `E = c/2 * y^2`, with `dy/dw_k` measured by
//! central differences. Checked for a linear layer, the scaled tanh and a second
//! linear layer, chained as LeNet chains them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

use lenet_layers::activation::ActivationLayer;
use lenet_layers::fc::FullyConnected;
use lenet_layers::{Activation, Algo, Layer};

struct Net {
    fc1: FullyConnected,
    act: ActivationLayer,
    fc2: FullyConnected,
}

impl Net {
    fn new() -> Self {
        let mut fc1 = FullyConnected::new("fc1", 3, 1, Algo::Naive);
        fc1.params_mut()[0].value = vec![0.3, -0.5, 0.8].into();
        fc1.params_mut()[1].value = vec![0.1].into();
        let mut fc2 = FullyConnected::new("fc2", 1, 1, Algo::Naive);
        fc2.params_mut()[0].value = vec![1.3].into();
        fc2.params_mut()[1].value = vec![-0.2].into();
        Net {
            fc1,
            act: ActivationLayer::new("fc1", Activation::ScaledTanh, vec![1], Algo::Naive),
            fc2,
        }
    }

    /// (a1, h1, y) for input x
    fn forward(&mut self, x: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (mut a1, mut h1, mut y) = (vec![0.0], vec![0.0], vec![0.0]);
        self.fc1.forward(1, x, &mut a1);
        self.act.forward(1, &a1, &mut h1);
        self.fc2.forward(1, &h1, &mut y);
        (a1, h1, y)
    }

    fn tensor(&mut self, t: usize) -> &mut [f32] {
        match t {
            0 => &mut self.fc1.params_mut()[0].value,
            1 => &mut self.fc1.params_mut()[1].value,
            2 => &mut self.fc2.params_mut()[0].value,
            _ => &mut self.fc2.params_mut()[1].value,
        }
    }
}

#[test]
fn second_derivative_pass_is_the_gauss_newton_diagonal() {
    let x = [0.7f32, -1.1, 0.4];
    let c = 0.9f32; // d2E/dy2
    let mut net = Net::new();
    let (a1, h1, y) = net.forward(&x);
    // the second-derivative pass, output to input
    let (mut d2h1, mut d2a1, mut d2x) = (vec![0.0], vec![0.0], vec![0.0; 3]);
    net.fc2.backward_second(1, &h1, &y, &[c], Some(&mut d2h1));
    net.act.backward_second(1, &a1, &h1, &d2h1, Some(&mut d2a1));
    net.fc1.backward_second(1, &x, &a1, &d2a1, Some(&mut d2x));
    let analytic: Vec<Vec<f32>> = vec![
        net.fc1.params()[0].hess.to_vec(),
        net.fc1.params()[1].hess.to_vec(),
        net.fc2.params()[0].hess.to_vec(),
        net.fc2.params()[1].hess.to_vec(),
    ];
    for (t, h) in analytic.iter().enumerate() {
        for (k, &hk) in h.iter().enumerate() {
            let e = 1e-3f32;
            let w = net.tensor(t)[k];
            net.tensor(t)[k] = w + e;
            let up = net.forward(&x).2[0] as f64;
            net.tensor(t)[k] = w - e;
            let down = net.forward(&x).2[0] as f64;
            net.tensor(t)[k] = w;
            let dy_dw = (up - down) / (2.0 * e as f64);
            let gauss_newton = c as f64 * dy_dw * dy_dw;
            assert!(
                (gauss_newton - hk as f64).abs() <= 1e-3 * gauss_newton.abs().max(1e-3),
                "tensor {t}[{k}]: finite-difference GN {gauss_newton}, backward_second {hk}"
            );
        }
    }
}
