//! Authentication and RBAC on a real 3-member cluster: etcdctl (etcd 3.4's, with `--user`, over
//! every endpoint: tokens are assigned on every member) and the `etcd-client` crate
//! (`ConnectOptions::with_user`). Each client talks to all members, so a token issued by one
//! member is used on the others.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, Permission, RoleRevokePermissionOptions, WatchOptions};
use quorum_tests::{have_etcdctl, Cluster};

/// The two tests start their clusters one after the other: two clusters picking free ports at
/// the same time may pick the same one.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn start_cluster() -> Cluster {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Cluster::start(binary(), 3, &[])
}

/// etcd's error for a request checked before an auth change and applied after it.
const OLD_REVISION: &str = "revision of auth store is old";

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_quorum-test-server"))
}

struct Ctl {
    endpoints: String,
}

impl Ctl {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints))
            .arg("--command-timeout=10s")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "etcdctl {args:?} failed: {err}{out}");
        out
    }

    fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(!ok, "etcdctl {args:?} should have failed: {out}");
        err
    }
}

fn wait_healthy(ctl: &Ctl) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ctl.run(&["endpoint", "health"]).0 {
        assert!(Instant::now() < deadline, "cluster never became healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn etcdctl_users_roles_and_enforcement() {
    if !have_etcdctl() {
        eprintln!("SKIPPED: etcdctl is not installed (scripts/test.sh installs it)");
        return;
    }
    let cluster = start_cluster();
    let ctl = Ctl {
        endpoints: cluster.endpoints().join(","),
    };
    wait_healthy(&ctl);

    assert!(ctl
        .ok(&["user", "add", "root:rootpw"])
        .contains("User root created"));
    ctl.ok(&["role", "add", "reader"]);
    ctl.ok(&["role", "add", "writer"]);
    let out = ctl.ok(&[
        "role",
        "grant-permission",
        "reader",
        "read",
        "pub/",
        "--prefix=true",
    ]);
    assert!(out.contains("Role reader updated"), "{out}");
    ctl.ok(&[
        "role",
        "grant-permission",
        "writer",
        "readwrite",
        "pub/",
        "--prefix=true",
    ]);
    ctl.ok(&["user", "add", "bob:bobpw"]);
    ctl.ok(&["user", "add", "alice:alicepw"]);
    ctl.ok(&["user", "grant-role", "bob", "reader"]);
    assert!(ctl
        .ok(&["user", "grant-role", "alice", "writer"])
        .contains("Role writer is granted to user alice"));
    let role = ctl.ok(&["role", "get", "writer"]);
    assert!(role.contains("pub/"), "{role}");
    assert_eq!(ctl.ok(&["user", "list"]), "alice\nbob\nroot\n");
    let err = ctl.fails(&["user", "add", "bob:again"]);
    assert!(err.contains("user name already exists"), "{err}");

    // etcdctl's `auth enable` meets "root user does not have root role", creates role root,
    // grants it and retries, as with etcd.
    assert!(ctl
        .ok(&["auth", "enable"])
        .contains("Authentication Enabled"));

    // No user: refused (by a member that has not applied the enable yet, at apply, because
    // the auth revision moved: etcd's "revision of auth store is old").
    let err = ctl.fails(&["put", "pub/a", "1"]);
    assert!(
        err.contains("user name is empty") || err.contains(OLD_REVISION),
        "{err}"
    );
    // Wrong password.
    let err = ctl.fails(&["--user", "alice:nope", "get", "pub/a"]);
    assert!(err.contains("authentication failed"), "{err}");
    // Several commands in a row: the token is used on every endpoint (round robin).
    for i in 0..6 {
        let k = format!("pub/{i}");
        assert_eq!(
            ctl.ok(&["--user", "alice:alicepw", "put", &k, "v"]).trim(),
            "OK"
        );
    }
    assert_eq!(
        ctl.ok(&["--user", "bob:bobpw", "get", "pub/3", "--print-value-only"]),
        "v\n"
    );
    assert_eq!(
        ctl.ok(&[
            "--user",
            "bob:bobpw",
            "get",
            "pub/",
            "--prefix",
            "--keys-only"
        ])
        .lines()
        .filter(|l| !l.is_empty())
        .count(),
        6
    );
    // Permissions: bob reads only; nobody but root outside pub/; admin calls need root.
    let err = ctl.fails(&["--user", "bob:bobpw", "put", "pub/x", "1"]);
    assert!(err.contains("permission denied"), "{err}");
    let err = ctl.fails(&["--user", "alice:alicepw", "get", "secret"]);
    assert!(err.contains("permission denied"), "{err}");
    let err = ctl.fails(&["--user", "alice:alicepw", "get", "", "--from-key"]);
    assert!(err.contains("permission denied"), "{err}");
    let err = ctl.fails(&["--user", "alice:alicepw", "user", "list"]);
    assert!(err.contains("permission denied"), "{err}");
    // alice has READWRITE on pub/: a delete returning the previous value is allowed.
    let out = ctl.ok(&["--user", "alice:alicepw", "del", "pub/5", "--prev-kv"]);
    assert!(out.starts_with("1\n"), "{out}");
    ctl.ok(&["--user", "root:rootpw", "put", "secret", "s"]);
    assert!(ctl
        .ok(&["--user", "root:rootpw", "member", "list"])
        .contains("m0"));
    let err = ctl.fails(&["--user", "alice:alicepw", "defrag"]);
    assert!(err.contains("permission denied"), "{err}");
    // Root cannot lose its role while auth is on.
    let err = ctl.fails(&[
        "--user",
        "root:rootpw",
        "user",
        "revoke-role",
        "root",
        "root",
    ]);
    assert!(err.contains("invalid auth management"), "{err}");

    // Revoking a permission takes effect at once.
    ctl.ok(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "writer",
        "pub/",
        "--prefix=true",
    ]);
    let err = ctl.fails(&["--user", "alice:alicepw", "put", "pub/y", "1"]);
    assert!(
        err.contains("permission denied") || err.contains(OLD_REVISION),
        "{err}"
    );

    // Disable: anyone may write again.
    assert!(ctl
        .ok(&["--user", "root:rootpw", "auth", "disable"])
        .contains("Authentication Disabled"));
    // Members that have not applied the disable yet still check (etcd's followers lag too).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ctl.run(&["put", "pub/z", "1"]).0 {
        assert!(Instant::now() < deadline, "auth is still enforced");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ctl.ok(&["get", "secret", "--print-value-only"]), "s\n");
}

async fn connect(
    endpoints: &[String],
    user: Option<(&str, &str)>,
) -> Result<Client, etcd_client::Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let opts = user.map(|(u, p)| ConnectOptions::new().with_user(u, p));
        match Client::connect(endpoints, opts).await {
            Ok(c) => return Ok(c),
            Err(e) if e.to_string().contains("etcdserver:") || Instant::now() > deadline => {
                return Err(e)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_client_with_user() {
    let cluster = start_cluster();
    let eps = cluster.endpoints();
    let mut admin = connect(&eps, None).await.expect("connect");
    // Wait for a leader.
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin.put("warmup", "1", None).await.is_err() {
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let err = admin.auth_enable().await.expect_err("no root user");
    assert!(
        err.to_string().contains("root user does not exist"),
        "{err}"
    );
    admin
        .user_add("root", "rootpw", None)
        .await
        .expect("user add root");
    let err = admin.auth_enable().await.expect_err("root lacks root role");
    assert!(
        err.to_string()
            .contains("root user does not have root role"),
        "{err}"
    );
    admin.role_add("root").await.expect("role add root");
    admin
        .user_grant_role("root", "root")
        .await
        .expect("grant root");
    admin.role_add("app").await.expect("role add");
    admin
        .role_grant_permission("app", Permission::read_write("app/").with_prefix())
        .await
        .expect("grant permission");
    admin
        .user_add("app", "apppw", None)
        .await
        .expect("user add");
    admin
        .user_grant_role("app", "app")
        .await
        .expect("grant role");
    admin.auth_enable().await.expect("auth enable");

    // The old connection has no token now. A member that has not applied the enable yet
    // checks the put as allowed; apply then refuses it because the auth revision moved.
    let mut tries = 0;
    loop {
        let err = admin.put("app/1", "v", None).await.expect_err("no user");
        if err.to_string().contains(OLD_REVISION) && tries < 50 {
            tries += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert!(err.to_string().contains("user name is empty"), "{err}");
        break;
    }

    let err = connect(&eps, Some(("app", "wrong")))
        .await
        .err()
        .expect("bad password");
    assert!(err.to_string().contains("authentication failed"), "{err}");

    let mut app = connect(&eps, Some(("app", "apppw")))
        .await
        .expect("app login");
    for i in 0..6 {
        app.put(format!("app/{i}"), "v", None)
            .await
            .expect("put in app/");
    }
    let got = app.get("app/3", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"v");
    let err = app.put("other", "v", None).await.expect_err("outside app/");
    assert!(err.to_string().contains("permission denied"), "{err}");
    // Watch: a range the user cannot read is refused with a canceled creation.
    let mut denied = app.watch("other", None).await.expect("watch stream");
    let first = denied
        .message()
        .await
        .expect("watch response")
        .expect("a response");
    assert!(first.canceled(), "{first:?}");
    assert!(
        first.cancel_reason().contains("permission denied"),
        "{first:?}"
    );
    let mut allowed = app
        .watch("app/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch stream");
    let first = allowed
        .message()
        .await
        .expect("watch response")
        .expect("a response");
    assert!(first.created() && !first.canceled(), "{first:?}");
    // Locks need READWRITE on `name/`.
    // (Retried on "session expired": the lock service's leader-side lease check can run
    // before the leader applied the session's grant; an issue of the lock service, not of
    // auth.)
    let mut tries = 0;
    let held = loop {
        match app.lock("app/lk", None).await {
            Ok(h) => break h,
            Err(e) if e.to_string().contains("session expired") && tries < 5 => tries += 1,
            Err(e) => panic!("lock in app/: {e}"),
        }
    };
    app.unlock(held.key().to_vec()).await.expect("unlock");
    let err = app
        .lock("other", None)
        .await
        .expect_err("lock outside app/");
    assert!(err.to_string().contains("permission denied"), "{err}");
    let err = app.user_list().await.expect_err("admin only");
    assert!(err.to_string().contains("permission denied"), "{err}");

    let mut root = connect(&eps, Some(("root", "rootpw")))
        .await
        .expect("root login");
    let users = root.user_list().await.expect("user list");
    assert_eq!(users.users(), ["app".to_string(), "root".to_string()]);
    root.role_revoke_permission(
        "app",
        "app/",
        Some(RoleRevokePermissionOptions::new().with_prefix()),
    )
    .await
    .expect("revoke");
    let err = app.put("app/9", "v", None).await.expect_err("revoked");
    let err = err.to_string();
    assert!(
        err.contains("permission denied") || err.contains(OLD_REVISION),
        "{err}"
    );

    // Stamped with the auth revision its member has applied: a member that has not applied
    // the revoke yet gets "revision of auth store is old" at apply, as etcd; retry then.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match root.auth_disable().await {
            Ok(_) => break,
            Err(e) if e.to_string().contains(OLD_REVISION) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("auth disable: {e}"),
        }
    }
    // Members that have not applied the disable yet still check (etcd's followers lag too).
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = admin.put("app/9", "v", None).await {
        assert!(Instant::now() < deadline, "auth is off: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
