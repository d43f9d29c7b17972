//! The log channel (watchpost's own `log_configs`): one line per
//! notification, newlines escaped, the default message or the configured
//! template.

use std::sync::{Arc, Mutex};

use watchpost::channels::LogSink;

use super::channels_common::{build_with, context, notification};

fn lines(buf: &Arc<Mutex<Vec<u8>>>) -> Vec<String> {
    String::from_utf8(buf.lock().unwrap().clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn one_line_per_notification() {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let mut ctx = context();
    ctx.log_sink = LogSink::Buffer(buf.clone());
    let y = "route: {receiver: r}
receivers:
  - name: r
    log_configs:
      - {}
      - message: \"{{ .Status }} {{ len .Alerts }}\\nsecond line\"
";
    let built = build_with(y, "r", &ctx);
    assert_eq!(built.len(), 2);
    assert_eq!(built[0].integration(), "log[0]");
    for n in &built {
        n.send(&notification("r", false)).await.unwrap();
    }
    let got = lines(&buf);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains("HostDown"), "{got:?}");
    assert!(got[0].contains("a:9100"), "{got:?}");
    assert_eq!(got[1], "firing 2\\nsecond line");
}
