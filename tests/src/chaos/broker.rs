//! `handoff-mock-broker` as a child process, driven over its standard input: the broker
//! of the chaos runs that kill group members (Tansu 0.6 keeps a SIGKILLed member in its
//! group; shared/design/architecture.md, "Brokers on these machines").

use std::process::Stdio;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

#[derive(Debug)]
pub struct MockBroker {
    pub bootstrap: String,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    _child: Child,
}

impl MockBroker {
    /// Starts a one-broker mock cluster (broker id 1).
    pub async fn start() -> anyhow::Result<Self> {
        let mut child = Command::new(super::binary("handoff-mock-broker")?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting handoff-mock-broker")?;
        let stdin = child.stdin.take().context("its stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("its stdout")?).lines();
        let first = stdout
            .next_line()
            .await?
            .context("handoff-mock-broker ended before naming its address")?;
        let bootstrap = first
            .strip_prefix("bootstrap=")
            .with_context(|| format!("handoff-mock-broker said {first:?}"))?
            .to_owned();
        Ok(Self {
            bootstrap,
            stdin,
            stdout,
            _child: child,
        })
    }

    /// Sends one command (see the binary's documentation) and waits for its `ok`.
    pub async fn command(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        let answer = self
            .stdout
            .next_line()
            .await?
            .context("handoff-mock-broker ended")?;
        anyhow::ensure!(answer == "ok", "mock broker, {line:?}: {answer}");
        Ok(())
    }
}
