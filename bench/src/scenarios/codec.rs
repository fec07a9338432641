//! A micro-benchmark of the wire codec, to size one cost seen in the
//! interchange's profile: messages are internally tagged enums
//! (`#[serde(tag = "type")]`), which serde decodes by first buffering the
//! whole message. Compares decoding a tagged message of N items with
//! decoding the same N items as plain structs, per item.

use crate::report::{self, round, Table};
use anyhow::Result;
use protocol::{FromClient, FromManager, ManagerId, TaskId, TaskResult, TaskState, TaskSubmission};
use serde_json::{json, Value};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

fn result(seq: u64) -> TaskResult {
    TaskResult {
        exit_code: Some(0),
        manager_id: Some(ManagerId::from_u128(7)),
        block_id: Some("bench-7".to_owned()),
        nodes: vec!["m7-n3".to_owned()],
        start_time: Some(1.7e9),
        end_time: Some(1.7e9),
        ..TaskResult::new(TaskId::from_u128(u128::from(seq)), TaskState::Completed)
    }
}

fn submission(seq: u64) -> TaskSubmission {
    TaskSubmission::new(TaskId::from_u128(u128::from(seq)), "true")
}

/// Microseconds per item of `decode` run `rounds` times over `items` items.
fn per_item(rounds: usize, items: usize, mut decode: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..rounds {
        decode();
    }
    start.elapsed().as_secs_f64() * 1e6 / (rounds * items) as f64
}

pub fn run(out_dir: &Path, n_results: usize, n_submissions: usize, rounds: usize) -> Result<Value> {
    let results: Vec<TaskResult> = (0..n_results as u64).map(result).collect();
    let tagged_results = protocol::encode(&FromManager::Results {
        results: results.clone(),
    });
    let plain_results: Vec<Vec<u8>> = results.iter().map(protocol::encode).collect();
    let submissions: Vec<TaskSubmission> = (0..n_submissions as u64).map(submission).collect();
    let tagged_submit = protocol::encode(&FromClient::Submit {
        request_id: 1,
        tasks: submissions.clone(),
    });
    let plain_submissions: Vec<Vec<u8>> = submissions.iter().map(protocol::encode).collect();

    let rounds_submit = (rounds * n_results / n_submissions.max(1)).max(1);
    let tagged_r = per_item(rounds, n_results, || {
        black_box(protocol::decode::<FromManager>(black_box(&tagged_results)).is_ok());
    });
    let plain_r = per_item(rounds, n_results, || {
        for frame in &plain_results {
            black_box(protocol::decode::<TaskResult>(black_box(frame)).is_ok());
        }
    });
    let tagged_s = per_item(rounds_submit, n_submissions, || {
        black_box(protocol::decode::<FromClient>(black_box(&tagged_submit)).is_ok());
    });
    let plain_s = per_item(rounds_submit, n_submissions, || {
        for frame in &plain_submissions {
            black_box(protocol::decode::<TaskSubmission>(black_box(frame)).is_ok());
        }
    });
    let encode_r = per_item(rounds, n_results, || {
        black_box(protocol::encode(&FromManager::Results {
            results: black_box(results.clone()),
        }));
    });

    let mut table = Table::new(&[
        "message",
        "items",
        "tagged enum µs/item",
        "plain struct µs/item",
        "tagged / plain",
    ]);
    table.row(vec![
        "results (manager)".into(),
        n_results.to_string(),
        format!("{tagged_r:.3}"),
        format!("{plain_r:.3}"),
        format!("{:.2}", tagged_r / plain_r),
    ]);
    table.row(vec![
        "submit (client)".into(),
        n_submissions.to_string(),
        format!("{tagged_s:.3}"),
        format!("{plain_s:.3}"),
        format!("{:.2}", tagged_s / plain_s),
    ]);
    println!(
        "Codec: decoding an internally tagged message against its items as plain structs \
         (encoding results: {encode_r:.3} µs/item, clone included)"
    );
    print!("{}", table.render());
    let report = json!({
        "benchmark": "codec",
        "machine": report::machine(),
        "results": {"items": n_results, "tagged_us": round(tagged_r, 3), "plain_us": round(plain_r, 3), "encode_us": round(encode_r, 3)},
        "submit": {"items": n_submissions, "tagged_us": round(tagged_s, 3), "plain_us": round(plain_s, 3)},
    });
    report::write_json(out_dir, "codec.json", &report)?;
    Ok(report)
}
