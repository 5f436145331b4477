//! A real headless Chromium (Debian's `chromium` and `chromium-driver`, `make ui-tools`),
//! driven over WebDriver by fantoccini: the browser tests open the pages a person would.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::{eventually, free_port, spawn_tied, workspace_root};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser session and the driver serving it; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    pub async fn start() -> anyhow::Result<Self> {
        for tool in [CHROMEDRIVER, CHROMIUM] {
            anyhow::ensure!(
                Path::new(tool).exists(),
                "{tool} is missing: run `make ui-tools` (Debian packages chromium, chromium-driver)"
            );
        }
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = spawn_tied(command, libc::SIGKILL).context("starting chromedriver")?;
        let url = format!("http://127.0.0.1:{port}");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                // No sandbox: CI runs as root, where Chromium's own sandbox cannot start.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,900"],
            }),
        );
        let client = eventually(Duration::from_secs(60), "chromedriver to answer", || {
            let (url, capabilities) = (url.clone(), capabilities.clone());
            async move {
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&url)
                    .await
                    .ok()
            }
        })
        .await?;
        Ok(Self { client, driver })
    }

    /// The element `css` matches, once one does (the page draws asynchronously).
    pub async fn wait_for(&self, css: &str, limit: Duration) -> anyhow::Result<Element> {
        eventually(limit, css, || async {
            self.client.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    /// Clicks what `css` matches, once a click goes through: a page that redraws replaces its
    /// elements (a stale one, or one not yet laid out, refuses the click), so it is found again
    /// each try.
    pub async fn click(&self, css: &str, limit: Duration) -> anyhow::Result<()> {
        eventually(limit, &format!("a click on {css}"), || async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            element.click().await.ok()
        })
        .await
    }

    /// Types `text` into what `css` matches, found again each try as [`Browser::click`] does.
    pub async fn type_into(&self, css: &str, text: &str, limit: Duration) -> anyhow::Result<()> {
        eventually(limit, &format!("typing into {css}"), || async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            element.clear().await.ok()?;
            element.send_keys(text).await.ok()
        })
        .await
    }

    /// The text of what `css` matches once it contains `part` (found again each try, as the
    /// page redraws).
    pub async fn text_with(
        &self,
        css: &str,
        part: &str,
        limit: Duration,
    ) -> anyhow::Result<String> {
        eventually(limit, &format!("{css} containing {part:?}"), || async {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            element.text().await.ok().filter(|t| t.contains(part))
        })
        .await
    }

    /// Saves a screenshot as `target/ui-screenshots/NAME.png` (a test artifact).
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = workspace_root().join("target/ui-screenshots");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await?)?;
        Ok(path)
    }
}

impl Browser {
    /// Ends the session, so Chromium exits before its driver is killed.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
