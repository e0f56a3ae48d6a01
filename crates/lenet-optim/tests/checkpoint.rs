//! Checkpoints: round trip, and every kind of bad file is a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a bad case should stop loudly

use std::path::Path;

use lenet_layers::{LeNet5, ModelConfig};
use lenet_optim::checkpoint::{from_bytes, load, save, to_bytes, Checkpoint, CheckpointError};
use lenet_optim::{Method, Optimizer, OptimizerConfig, Schedule, TrainConfig, Trainer};

fn sample() -> Checkpoint {
    let model = LeNet5::new(ModelConfig::classic(), 1).unwrap();
    let config = OptimizerConfig {
        method: Method::sdlm(),
        schedule: Schedule::paper(),
    };
    let mut trainer = Trainer::new(
        TrainConfig {
            epochs: 3,
            batch_size: 1,
            eval_batch: 100,
        },
        Optimizer::new(config, &model),
    )
    .unwrap();
    trainer.progress.epoch = 2;
    trainer.progress.next_batch = 17;
    Checkpoint::capture(&model, &trainer, 42, r#"{"flags":1}"#.into())
}

#[test]
fn round_trip_restores_model_and_trainer() {
    let ck = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.bin");
    save(&ck, &path).unwrap();
    let back = load(&path).unwrap();
    assert_eq!(back, ck);
    let model = back.model(&path).unwrap();
    let trainer = back.trainer(&model, &path).unwrap();
    assert_eq!((trainer.progress.epoch, trainer.progress.next_batch), (2, 17));
    assert_eq!(model.config(), &ModelConfig::classic());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn bad_checkpoints_are_typed_errors() {
    let p = Path::new("ck.bin");
    let good = to_bytes(&sample());
    assert!(matches!(
        from_bytes(b"garbage", p),
        Err(CheckpointError::BadMagic { .. })
    ));
    assert!(matches!(
        from_bytes(&good[..10], p),
        Err(CheckpointError::Truncated { .. })
    ));
    assert!(matches!(
        from_bytes(&good[..good.len() - 1], p),
        Err(CheckpointError::Truncated { .. })
    ));
    let mut version = good.clone();
    version[8] = 99;
    assert!(matches!(
        from_bytes(&version, p),
        Err(CheckpointError::Version { found: 99, .. })
    ));
    let mut flipped = good.clone();
    let n = flipped.len();
    flipped[n - 5] ^= 0x40;
    assert!(matches!(
        from_bytes(&flipped, p),
        Err(CheckpointError::Checksum { .. })
    ));
    // a valid frame around a payload that is not a checkpoint
    let payload = b"\x05not a checkpoint at all";
    let mut framed = good[..12].to_vec();
    framed.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    framed.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    framed.extend_from_slice(payload);
    assert!(matches!(
        from_bytes(&framed, p),
        Err(CheckpointError::Decode { .. })
    ));
    // a checkpoint whose tensors do not fit its model
    let mut wrong = sample();
    wrong.tensors[0].1.pop();
    let wrong = from_bytes(&to_bytes(&wrong), p).unwrap();
    assert!(matches!(wrong.model(p), Err(CheckpointError::Mismatch { .. })));
    assert!(matches!(
        load(Path::new("/nonexistent/ck.bin")),
        Err(CheckpointError::Io { .. })
    ));
}

/// A checkpoint whose checksum is right but whose settings are not (as a hand
/// edit that recomputes the CRC makes) is refused on load, naming the setting,
/// before any of it is used: no allocation of 2^62 images, no epoch 0.
#[test]
fn checkpoints_with_absurd_settings_are_refused_after_the_checksum() {
    type Damage = fn(&mut Checkpoint);
    let cases: [(&str, Damage); 5] = [
        ("batch size 4611686018427387904", |ck| {
            ck.train.batch_size = 1 << 62
        }),
        ("evaluation batch size 4611686018427387904", |ck| {
            ck.train.eval_batch = 1 << 62
        }),
        ("epoch 0", |ck| ck.progress.epoch = 0),
        ("epoch 1152921504606846976", |ck| ck.progress.epoch = 1 << 60),
        ("a finished run has no next batch", |ck| {
            ck.progress.epoch = ck.train.epochs + 1;
            ck.progress.next_batch = 5;
        }),
    ];
    for (expect, damage) in cases {
        let mut ck = sample();
        damage(&mut ck);
        // to_bytes writes a correct checksum over the damaged values
        let err = from_bytes(&to_bytes(&ck), Path::new("ck.bin")).unwrap_err();
        assert!(matches!(err, CheckpointError::Settings { .. }), "{expect}: {err}");
        assert!(err.to_string().contains(expect), "{expect}: {err}");
    }
}
