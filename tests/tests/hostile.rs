//! A seeded, bounded message fuzzer against a running interchange: hostile
//! clients (a client identity that is no admin) and hostile managers (with
//! the manager key: insiders) send mutated golden messages, random bytes,
//! multipart frames and well-formed but hostile requests, all at once,
//! while a well-behaved client asks for `status` and runs a task on a real
//! pool-manager. The interchange must stay up, answer the well-behaved
//! client within a bound every time, and keep its resident memory bounded.
//!
//! The seed is `RHTEX_HOSTILE_SEED` (default fixed), printed, so that a
//! failure can be replayed.

use e2e::client::dealer_with;
use e2e::{task, ManagerOptions, RawClient, Scenario, Security, WAIT};
use protocol::{
    Command, FromClient, FromManager, Launcher, ManagerId, Registration, TaskId, TaskSubmission,
    PROTOCOL_VERSION,
};
use std::path::Path;
use std::time::{Duration, Instant};
use transport::zmq;
use transport::ClientSecurity;

/// Frames the hostile peers send in all.
const N_FRAMES: usize = 20_000;
/// The well-behaved client asks for `status` after every this many frames.
const PROBE_EVERY: usize = 500;
/// The longest the interchange may take to answer the well-behaved client.
const ANSWER_BOUND: Duration = Duration::from_secs(5);
/// The interchange's resident memory may not grow past this.
const RSS_BOUND_MIB: u64 = 256;
const N_HOSTILE_CLIENTS: usize = 4;
const N_HOSTILE_MANAGERS: usize = 4;

/// xorshift64*: small, seeded, enough to choose mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn golden_frames(prefix: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/golden");
    let mut frames: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("proto/golden")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (name.ends_with(".msgpack") && (name.starts_with(prefix) || name.contains(prefix)))
                .then(|| {
                    (
                        name,
                        std::fs::read(entry.path()).expect("read a golden file"),
                    )
                })
        })
        .collect();
    frames.sort();
    assert!(!frames.is_empty(), "no golden {prefix} files");
    frames.into_iter().map(|(_, bytes)| bytes).collect()
}

/// A hostile frame: a golden message mutated (bytes flipped, cut,
/// spliced with another, bytes inserted), random bytes, or a well-formed
/// message that is hostile in what it asks.
fn hostile_frame(
    rng: &mut Rng,
    seeds: &[Vec<u8>],
    well_formed: &dyn Fn(&mut Rng) -> Vec<u8>,
) -> Vec<u8> {
    let mut frame = seeds[rng.below(seeds.len())].clone();
    match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(frame.len());
                frame[at] = rng.next() as u8;
            }
        }
        1 => frame.truncate(rng.below(frame.len())),
        2 => {
            let other = &seeds[rng.below(seeds.len())];
            let cut = rng.below(frame.len());
            frame.truncate(cut);
            frame.extend_from_slice(&other[rng.below(other.len())..]);
        }
        3 => {
            let at = rng.below(frame.len());
            let n = rng.below(64);
            let inserted = rng.bytes(n);
            frame.splice(at..at, inserted);
        }
        4 => {
            let n = rng.below(4096);
            frame = rng.bytes(n);
        }
        _ => frame = well_formed(rng),
    }
    frame
}

fn random_id(rng: &mut Rng) -> u128 {
    (u128::from(rng.next()) << 64) | u128::from(rng.next())
}

/// Well-formed client requests that ask for too much or for what is not
/// theirs: big submits, watches of many ids, other users' tasks, admin
/// commands, another protocol version.
fn hostile_client_message(rng: &mut Rng) -> Vec<u8> {
    let message = match rng.below(6) {
        0 => FromClient::Hello {
            protocol_version: rng.below(5) as u32,
            client_version: "hostile".to_owned(),
        },
        1 => FromClient::Submit {
            request_id: rng.next(),
            tasks: (0..1 + rng.below(50))
                .map(|_| {
                    let n_input = rng.below(64 * 1024);
                    TaskSubmission {
                        input: Some(rng.bytes(n_input)),
                        ..TaskSubmission::new(
                            TaskId::from_u128(random_id(rng)),
                            "x".repeat(rng.below(8192)),
                        )
                    }
                })
                .collect(),
        },
        2 => FromClient::Watch {
            request_id: rng.next(),
            task_ids: (0..rng.below(2000))
                .map(|_| TaskId::from_u128(random_id(rng)))
                .collect(),
        },
        3 => FromClient::Command {
            request_id: rng.next(),
            command: Command::Shutdown,
        },
        4 => FromClient::Command {
            request_id: rng.next(),
            command: Command::Cancel {
                task_id: TaskId::from_u128(random_id(rng)),
            },
        },
        _ => FromClient::Goodbye,
    };
    protocol::encode(&message)
}

/// Well-formed manager messages that lie: registrations with many or bad
/// nodes, results for tasks never sent, goodbyes and drain requests.
fn hostile_manager_message(rng: &mut Rng) -> Vec<u8> {
    let message = match rng.below(4) {
        0 => FromManager::Register(Registration {
            protocol_version: PROTOCOL_VERSION,
            manager_id: ManagerId::from_u128(random_id(rng)),
            block_id: "hostile".to_owned(),
            hostname: "hostile".to_owned(),
            nodes: (0..1 + rng.below(3000))
                .map(|index| {
                    if rng.below(10) == 0 {
                        "-bad name".to_owned()
                    } else {
                        format!("h{index}")
                    }
                })
                .collect(),
            launcher: Launcher::Mpiexec,
            rhtex_version: "0".to_owned(),
            cpu_count: rng.below(1000) as u32,
            slots_per_node: Some(rng.below(1000) as u32),
            versions: Default::default(),
            // A re-registration that claims results of tasks never sent.
            attempt: rng.below(3) as u32,
            running_tasks: Vec::new(),
            held_results: (0..rng.below(50))
                .map(|_| TaskId::from_u128(random_id(rng)))
                .collect(),
        }),
        1 => FromManager::Results {
            results: (0..rng.below(100))
                .map(|_| {
                    protocol::TaskResult::new(
                        TaskId::from_u128(random_id(rng)),
                        protocol::TaskState::Completed,
                    )
                })
                .collect(),
        },
        2 => FromManager::DrainRequest,
        _ => FromManager::Goodbye {
            reason: "hostile".to_owned(),
        },
    };
    protocol::encode(&message)
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024
}

/// Sends without blocking; a full queue drops the frame (hostile peers
/// do not care).
fn send(socket: &zmq::Socket, frame: Vec<u8>, multipart: bool) {
    let sent = if multipart {
        socket.send_multipart([frame.clone(), frame], zmq::DONTWAIT)
    } else {
        socket.send(frame, zmq::DONTWAIT)
    };
    match sent {
        Ok(()) | Err(zmq::Error::EAGAIN) => {}
        Err(error) => panic!("a hostile send failed: {error}"),
    }
}

#[test]
fn hostile_clients_and_managers_at_once_leave_the_interchange_up_responsive_and_bounded() {
    let seed: u64 = std::env::var("RHTEX_HOSTILE_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0x005e_ed0f_4057_11e5);
    println!("hostile message fuzzer: RHTEX_HOSTILE_SEED={seed}");
    let mut rng = Rng(seed | 1);

    let scenario = Scenario::new("hostile");
    let keys = scenario.keygen("keys");
    transport::keygen_client(&keys, &"mallory".parse().expect("name")).expect("add mallory");
    let mut interchange = scenario.start_interchange(
        "interchange",
        &Security::Curve(keys.clone()),
        &[
            "--max-task-input-bytes",
            "1048576",
            "--max-task-output-bytes",
            "1048576",
            "--max-message-mib",
            "24",
            "--max-queued-input-mib",
            "32",
            "--max-queued-task-mib",
            "32",
            "--max-finished-mib",
            "32",
            "--max-manager-nodes",
            "2048",
        ],
    );
    let manager = scenario.start_manager(&interchange, ManagerOptions::new("good", &["g1"]));
    let mut good = RawClient::connect(&interchange);
    good.wait_managers(&[manager.manager_id]);
    let rss_at_start = rss_mib(interchange.pid);

    let mallory = ClientSecurity::from_keys_dir_as(&keys, &"mallory".parse().expect("name"))
        .expect("mallory's keys");
    let manager_keys = Security::Curve(keys.clone())
        .manager_security()
        .expect("manager keys");
    let clients: Vec<zmq::Socket> = (0..N_HOSTILE_CLIENTS)
        .map(|index| {
            let routing_id = (index % 2 == 0).then(|| format!("hostile-client-{index}"));
            dealer_with(
                &interchange.client_url,
                &mallory,
                routing_id.as_deref().map(str::as_bytes),
            )
        })
        .collect();
    let managers: Vec<zmq::Socket> = (0..N_HOSTILE_MANAGERS)
        .map(|index| {
            // One claims the good manager's id as routing id.
            let routing_id = (index == 0).then(|| manager.manager_id.to_string());
            dealer_with(
                &interchange.manager_connect_url,
                &manager_keys,
                routing_id.as_deref().map(str::as_bytes),
            )
        })
        .collect();
    let client_seeds = golden_frames("from_client");
    let manager_seeds = golden_frames("from_manager");

    let mut rss_peak = rss_at_start;
    let mut slowest = Duration::ZERO;
    for index in 0..N_FRAMES {
        let multipart = rng.below(50) == 0;
        if rng.below(2) == 0 {
            let frame = hostile_frame(&mut rng, &client_seeds, &hostile_client_message);
            send(&clients[rng.below(clients.len())], frame, multipart);
        } else {
            let frame = hostile_frame(&mut rng, &manager_seeds, &hostile_manager_message);
            send(&managers[rng.below(managers.len())], frame, multipart);
        }
        if index % PROBE_EVERY == PROBE_EVERY - 1 {
            let asked = Instant::now();
            let report = good.status();
            let took = asked.elapsed();
            slowest = slowest.max(took);
            assert!(
                took <= ANSWER_BOUND,
                "status took {took:?} after {index} hostile frames (seed {seed})"
            );
            assert!(
                report
                    .managers
                    .iter()
                    .any(|info| info.manager_id == manager.manager_id),
                "the good manager is gone after {index} hostile frames (seed {seed})"
            );
            rss_peak = rss_peak.max(rss_mib(interchange.pid));
            assert!(
                interchange.daemon.try_exit().is_none(),
                "the interchange exited after {index} hostile frames (seed {seed})"
            );
        }
    }
    // The hostile peers leave (what they did not send is dropped). Managers
    // they registered (they hold the manager key) are held, so that the
    // good client's task runs on the good manager, as before the attack.
    drop((clients, managers));
    for info in good.status().managers {
        if info.manager_id != manager.manager_id {
            good.command(Command::Hold {
                manager_id: info.manager_id,
            });
        }
    }
    let task_id = good.submit_one(task("echo still-served"));
    let result = good.wait_result(task_id, WAIT);
    assert_eq!(e2e::client::stdout_of(&result), "still-served\n");
    rss_peak = rss_peak.max(rss_mib(interchange.pid));
    println!(
        "hostile message fuzzer: {N_FRAMES} frames, slowest status {slowest:?}, \
         RSS {rss_at_start} MiB at start, {rss_peak} MiB at most"
    );
    assert!(
        rss_peak <= RSS_BOUND_MIB,
        "the interchange grew to {rss_peak} MiB (bound {RSS_BOUND_MIB} MiB, seed {seed})"
    );
    assert!(
        interchange.daemon.try_exit().is_none(),
        "the interchange exited"
    );
}
