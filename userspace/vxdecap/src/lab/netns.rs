//! Network namespaces, veth pairs and child processes for the lab and the
//! integration tests, each behind a guard that removes it on drop, also
//! when a test fails or the user presses Ctrl-C.

use std::process::{Child, Command, Output, Stdio};

use anyhow::{bail, Context as _};

/// Runs a command to completion; fails with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<Output> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!("cannot run {program}: is it installed? (scripts/setup.sh installs it)")
        })?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// True when running as root (namespaces, XDP and AF_XDP need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A short name unique to this call, usable in namespace names: `vx`, `tag`, the process id
/// and a sequence number of this process (two tests of one binary may share a tag).
pub fn unique_name(tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("vx{tag}{}x{n}", std::process::id())
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace with its loopback up.
    pub fn create(name: &str) -> anyhow::Result<Self> {
        run("ip", &["netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME args…`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs `program args…` inside the namespace to completion.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// A command that runs `program args…` inside the namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name.as_str(), program])
            .args(args);
        cmd
    }

    /// Runs `f` on a new thread that has entered this namespace, so the
    /// sockets it creates live there; returns what `f` returns.
    pub fn spawn_in<T, F>(&self, f: F) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> anyhow::Result<T> + Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let file = std::fs::File::open(&path).with_context(|| format!("cannot open {path}"))?;
        Ok(std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .context("cannot enter the network namespace")?;
            f()
        }))
    }

    /// Adds `addr` (CIDR) to `dev` and brings it up.
    pub fn configure(&self, dev: &str, addr: &str) -> anyhow::Result<()> {
        self.ip(&["addr", "add", addr, "dev", dev])?;
        self.ip(&["link", "set", dev, "up"])?;
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth ends inside it.
        let _ = Command::new("ip")
            .args(["netns", "del", self.name.as_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Creates a veth pair with one end in each namespace.
pub fn veth_pair(a: &NetNs, a_dev: &str, b: &NetNs, b_dev: &str) -> anyhow::Result<()> {
    veth_pair_with_queues(a, a_dev, b, b_dev, 1)
}

/// Creates a veth pair with `queues` rx and tx queues on each end.
pub fn veth_pair_with_queues(
    a: &NetNs,
    a_dev: &str,
    b: &NetNs,
    b_dev: &str,
    queues: u32,
) -> anyhow::Result<()> {
    let q = queues.max(1).to_string();
    run(
        "ip",
        &[
            "link",
            "add",
            a_dev,
            "netns",
            a.name(),
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            b_dev,
            "netns",
            b.name(),
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ],
    )?;
    Ok(())
}

/// A child process killed (SIGKILL) and reaped on drop unless already reaped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        Self { child: Some(child) }
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The guarded child.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until taken")
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(self.id() as i32);
        nix::sys::signal::kill(pid, signal).context("cannot signal the child process")
    }

    /// Waits for the child and releases the guard.
    pub fn wait_with_output(mut self) -> anyhow::Result<Output> {
        let child = self.child.take().expect("child present until taken");
        child
            .wait_with_output()
            .context("cannot wait for the child process")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A child process whose stdout and stderr are read line by line on their
/// own threads: started, waited on until it says it is ready, stopped with
/// a signal, its output returned. Killed on drop.
#[derive(Debug)]
pub struct WatchedChild {
    guard: Option<ChildGuard>,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// How a watched child ended.
#[derive(Debug)]
pub struct ChildOutcome {
    /// Its exit status.
    pub status: std::process::ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl WatchedChild {
    /// Spawns `cmd` with its output piped and returns once a line on either
    /// stream contains one of `ready` (stdin is closed). Stderr lines are
    /// echoed to our stderr behind `echo_prefix` when one is given. On a
    /// timeout the child is killed and the error carries what it said.
    pub fn spawn(
        mut cmd: Command,
        ready: &'static [&'static str],
        timeout: std::time::Duration,
        echo_prefix: Option<&'static str>,
    ) -> anyhow::Result<Self> {
        use std::io::{BufRead as _, BufReader, Read};
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let watch = |stream: Box<dyn Read + Send>,
                     echo: Option<&'static str>,
                     ready_tx: std::sync::mpsc::Sender<()>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if ready.iter().any(|marker| line.contains(marker)) {
                        let _ = ready_tx.send(());
                    }
                    if let Some(prefix) = echo {
                        eprintln!("{prefix}{line}");
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
                text
            })
        };
        let stdout = child.stdout.take().context("stdout pipe")?;
        let stderr = child.stderr.take().context("stderr pipe")?;
        let stdout = watch(Box::new(stdout), None, ready_tx.clone());
        let stderr = watch(Box::new(stderr), echo_prefix, ready_tx);
        let mut watched = Self {
            guard: Some(ChildGuard::new(child)),
            stdout: Some(stdout),
            stderr: Some(stderr),
        };
        if ready_rx.recv_timeout(timeout).is_err() {
            let said = watched.stop(nix::sys::signal::Signal::SIGKILL)?;
            bail!(
                "{:?} did not start ({}):\n{}{}",
                cmd.get_program(),
                said.status,
                said.stdout,
                said.stderr
            );
        }
        Ok(watched)
    }

    /// The child's pid (0 once stopped).
    pub fn id(&self) -> u32 {
        self.guard.as_ref().map_or(0, ChildGuard::id)
    }

    /// Sends `signal`, waits for the child and returns its output.
    pub fn stop(&mut self, signal: nix::sys::signal::Signal) -> anyhow::Result<ChildOutcome> {
        let guard = self.guard.take().context("the child was already stopped")?;
        // The child may have exited already; waiting tells.
        let _ = guard.signal(signal);
        let status = guard.wait_with_output()?.status;
        let join = |h: Option<std::thread::JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        Ok(ChildOutcome {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        })
    }
}
