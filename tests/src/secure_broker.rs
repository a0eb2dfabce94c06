//! A broker of one test's own that asks for TLS and/or SASL, the way a managed Kafka does:
//! a Tansu process (`HANDOFF_TEST_TANSU`, printed by scripts/test-env.sh) with SCRAM users
//! and `--authentication`, behind Debian's `stunnel` as the TLS terminator (Tansu 0.6 takes
//! `--cert`/`--key` but serves its connections in plain text all the same). The broker
//! advertises the TLS port, so every connection a client makes goes through TLS.
//!
//! Certificates are made with the `openssl` command: a CA, a server certificate for
//! 127.0.0.1 signed by it, a client certificate for mutual TLS, and a second CA that signed
//! nothing (what a client trusting the wrong CA holds).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A SCRAM user the broker knows.
#[derive(Debug, Clone)]
pub struct ScramUser {
    /// `scram256` or `scram512` (Tansu's names).
    pub mechanism: &'static str,
    pub name: String,
    pub password: String,
}

/// What the broker asks of its clients.
#[derive(Debug, Clone, Default)]
pub struct BrokerSecurity {
    /// Users to create; any turns authentication on.
    pub users: Vec<ScramUser>,
    /// Serve TLS (through stunnel) instead of plain TCP.
    pub tls: bool,
    /// With `tls`: refuse clients without a certificate signed by the CA.
    pub require_client_cert: bool,
}

#[derive(Debug)]
pub struct SecureBroker {
    dir: PathBuf,
    /// The port clients use (stunnel's with TLS, else Tansu's).
    port: u16,
    tansu: Child,
    stunnel: Option<Child>,
}

const START: Duration = Duration::from_secs(30);

impl SecureBroker {
    pub async fn start(security: BrokerSecurity) -> Self {
        let tansu = std::env::var("HANDOFF_TEST_TANSU").unwrap_or_else(|_| {
            panic!("HANDOFF_TEST_TANSU is not set: run the suite with `make test` (scripts/test-env.sh up prints it)")
        });
        let plain = free_port();
        let tls = free_port();
        let dir = std::env::temp_dir()
            .join("handoff-e2e")
            .join(format!("broker-{}", crate::unique_id()));
        std::fs::create_dir_all(&dir).expect("the broker's folder");
        let advertised = if security.tls { tls } else { plain };
        if !security.users.is_empty() {
            // Users are created through the broker, which must not ask for them yet; the
            // SQLite store keeps them for the authenticating broker started next.
            let mut open = spawn_tansu(&tansu, &dir, plain, plain, false);
            wait_for_port(plain).await;
            for user in &security.users {
                let status = Command::new(&tansu)
                    .args(["user", "create", "--broker"])
                    .arg(format!("tcp://127.0.0.1:{plain}"))
                    .args(["--mechanism", user.mechanism, &user.name, &user.password])
                    .stdout(Stdio::null())
                    .status()
                    .await
                    .expect("tansu user create runs");
                assert!(
                    status.success(),
                    "tansu user create {}: {status}",
                    user.name
                );
            }
            open.kill().await.expect("the set-up broker stops");
            wait_for_port_free(plain).await;
        }
        let broker = spawn_tansu(&tansu, &dir, plain, advertised, !security.users.is_empty());
        wait_for_port(plain).await;
        let stunnel = if security.tls {
            make_certificates(&dir).await;
            let child = spawn_stunnel(&dir, tls, plain, security.require_client_cert);
            wait_for_port(tls).await;
            Some(child)
        } else {
            None
        };
        Self {
            dir,
            port: advertised,
            tansu: broker,
            stunnel,
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA that signed the broker's and the client's certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that signed nothing here.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    pub fn client_key_file(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    pub async fn stop(mut self) {
        if let Some(mut stunnel) = self.stunnel.take() {
            stunnel.kill().await.ok();
        }
        self.tansu.kill().await.ok();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn_tansu(tansu: &str, dir: &Path, port: u16, advertised: u16, authenticate: bool) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tansu.log"))
        .expect("tansu's log");
    let mut command = Command::new(tansu);
    // Tansu resolves sqlite:// paths against its working directory.
    command
        .current_dir(dir)
        .arg("broker")
        .arg("--listener-url")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://127.0.0.1:{advertised}"))
        .args(["--storage-engine", "sqlite://tansu.db"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("tansu's log"))
        .stderr(log)
        .kill_on_drop(true);
    if authenticate {
        command.arg("--authentication");
    }
    command.spawn().expect("tansu starts")
}

fn spawn_stunnel(dir: &Path, accept: u16, connect: u16, require_client_cert: bool) -> Child {
    let d = dir.display();
    let mut conf = format!(
        "foreground = yes\npid =\noutput = {d}/stunnel.log\n[kafka]\naccept = 127.0.0.1:{accept}\nconnect = 127.0.0.1:{connect}\ncert = {d}/server.pem\nkey = {d}/server.key\n"
    );
    if require_client_cert {
        conf.push_str(&format!(
            "CAfile = {d}/ca.pem\nverifyChain = yes\nrequireCert = yes\n"
        ));
    }
    let path = dir.join("stunnel.conf");
    std::fs::write(&path, conf).expect("stunnel.conf");
    Command::new("stunnel")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("stunnel (scripts/test-env.sh installs stunnel4)")
}

/// CA, server (127.0.0.1), client, and another CA, as PEM files in `dir`.
async fn make_certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    for (name, subject) in [
        ("ca", "/CN=handoff test CA"),
        ("other-ca", "/CN=another CA"),
    ] {
        openssl(
            dir,
            &[
                &["req", "-x509", "-nodes", "-days", "2"][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                    "-subj",
                    subject,
                ],
            ]
            .concat(),
        )
        .await;
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    )
    .expect("server.ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage = clientAuth\n").expect("client.ext");
    for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=handoff")] {
        openssl(
            dir,
            &[
                &["req", "-nodes"][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    subject,
                ],
            ]
            .concat(),
        )
        .await;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ],
        )
        .await;
    }
}

async fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .await
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn wait_for_port(port: u16) {
    crate::eventually(START, &format!("a listener on port {port}"), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

async fn wait_for_port_free(port: u16) {
    crate::eventually(START, &format!("port {port} to be free"), || async {
        TcpListener::bind(("127.0.0.1", port)).ok().map(|_| ())
    })
    .await;
}
