//! Starts the ranks of a one-machine run itself (what torchrun does, for `devices: [cpu, cpu]` or
//! `--devices cuda:0,cuda:1`): one child process per rank with torchrun's environment variables and a
//! store hosted by rank 0. Rank 0 prints to the terminal; the other ranks' output is kept and shown only
//! when they fail. When one rank fails, the others are stopped and the error names the rank.
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Lines of a rank's stderr kept for the error message.
const KEPT_LINES: usize = 20;

struct Rank {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// A rank still running when its handle goes (another failed, or waiting went wrong) is stopped, so no
/// path out of [`run_local_ranks`] leaves one behind.
impl Drop for Rank {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago, for rank 0's store (tests use it for theirs).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port for the ranks' store")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `world` copies of `command` as ranks 0..world on this machine and waits for all of them.
pub fn run_local_ranks(command: &Command, world: usize) -> Result<()> {
    let port = free_port()?;
    let mut ranks = Vec::with_capacity(world);
    for rank in 0..world {
        let mut child = Command::new(command.get_program());
        child.args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => child.env(key, value),
                None => child.env_remove(key),
            };
        }
        child
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_WORLD_SIZE", world.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env_remove("TORCHELASTIC_USE_AGENT_STORE")
            .stdin(Stdio::null());
        if rank > 0 {
            child.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        // SAFETY: prctl is async-signal-safe. A rank must not outlive the process that started it (a
        // killed parent would otherwise leave ranks training, or waiting on the store, forever).
        unsafe {
            child.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut spawned =
            child.spawn().with_context(|| format!("starting rank {rank} ({:?})", command.get_program()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let reader = spawned.stderr.take().map(|pipe| {
            let kept = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                    if kept.len() == KEPT_LINES {
                        kept.remove(0);
                    }
                    kept.push(line);
                }
            })
        });
        ranks.push(Rank { child: spawned, stderr, reader });
    }
    wait_all(ranks)
}

/// Waits for every rank; the first that fails makes the error (dropping the others stops them).
fn wait_all(mut ranks: Vec<Rank>) -> Result<()> {
    let mut done = vec![false; ranks.len()];
    while done.iter().any(|d| !d) {
        for (index, rank) in ranks.iter_mut().enumerate() {
            if done[index] {
                continue;
            }
            let Some(status) = rank.child.try_wait().context("waiting for a rank")? else { continue };
            done[index] = true;
            if !status.success() {
                if let Some(reader) = rank.reader.take() {
                    let _ = reader.join();
                }
                let said = rank.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
                bail!("{}", failure(index, status, &said));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// "rank 1 exited with code 1: error: ..." or "rank 1 was killed by signal 9".
fn failure(rank: usize, status: ExitStatus, stderr: &[String]) -> String {
    let how = match (status.code(), status.signal()) {
        (_, Some(signal)) => format!("rank {rank} was killed by signal {signal}"),
        (code, None) => format!("rank {rank} exited with code {}", code.unwrap_or(-1)),
    };
    // Rank 0 printed its own error to the terminal; another rank's last error line says what went wrong.
    match stderr.iter().rev().find(|l| l.starts_with("error:")) {
        Some(line) => format!("{how}: {}", line.trim_start_matches("error:").trim()),
        None => how,
    }
}
