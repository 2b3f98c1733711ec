//! Running the browser test scripts of `tests/browser/` (playwright-core driving Debian's
//! Chromium) against a server under test, one Chromium at a time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::skip;

/// How long one script may take (it launches Chromium and runs several checks).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// `tests/browser/`, where the scripts and their npm packages are.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Where scripts put screenshots: `target/browser/`.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("browser")
}

/// What is missing to run browser tests, if anything.
pub fn missing_tools() -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed (apt-get install nodejs npm)".into());
    }
    let chromium =
        std::env::var("STOMPEDE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} does not exist (apt-get install chromium)"));
    }
    if !browser_dir().join("node_modules/playwright-core").exists()
        || !browser_dir().join("node_modules/sockjs-client").exists()
        || !browser_dir().join("node_modules/sockjs-client-1.5.0").exists()
    {
        return Some(format!(
            "the npm packages of the browser tests are not installed (cd {} && npm ci)",
            browser_dir().display()
        ));
    }
    None
}

/// One Chromium at a time: on two cores, several at once starve each other (and the servers
/// under test) enough to miss 100 ms heart-beats.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `script` against the server at `url`; panics with its report if a check failed.
pub async fn run_script(test: &str, script: &str, url: &str) {
    run_script_with(test, script, &[url]).await;
}

/// Runs `script` with these arguments (the servers under test, the first one first).
pub async fn run_script_with(test: &str, script: &str, urls: &[&str]) {
    if let Some(missing) = missing_tools() {
        skip(test, &missing);
        return;
    }
    let _turn = ONE_BROWSER.lock().await;
    let child = tokio::process::Command::new("node")
        .arg(script)
        .args(urls)
        .current_dir(browser_dir())
        .env("STOMPEDE_ARTIFACTS", artifacts_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {SCRIPT_TIMEOUT:?}"))
        .expect("node ran");
    let report = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    println!("{report}");
    assert!(output.status.success(), "{script} failed:\n{report}\n{errors}");
    assert!(report.contains("all checks passed"), "{script} did not finish its checks:\n{report}");
}
