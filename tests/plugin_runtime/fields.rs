//! Raw fields: handed over with the message to plugins built before WIT 0.1.2, fetched on
//! demand (through `raw-fields`) by plugins built with the SDK since.

use std::sync::Arc;

use wxhost::plugin::{PushScope, WarmInstances};

use super::{default_context, event, load, reply_text, runtime, text};

#[test]
fn sdk_plugins_fetch_fields_on_demand_and_older_plugins_receive_them() {
    let rt = runtime();
    for (name, path) in [
        ("echo", wxhost_test_plugins::ECHO),
        ("welcome", wxhost_test_plugins::WELCOME),
        ("field-reader", wxhost_test_plugins::FIELD_READER),
    ] {
        assert!(
            load(&rt, name, path).fetches_fields_on_demand(),
            "{name} imports raw-fields"
        );
    }
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/echo-wit-0.1.0.wasm");
    assert!(!load(&rt, "echo-0-1-0", fixture).fetches_fields_on_demand());
}

#[tokio::test]
async fn a_plugin_reads_every_raw_field_of_its_message() {
    let rt = runtime();
    let reader = load(&rt, "field-reader", wxhost_test_plugins::FIELD_READER);
    let msg = event(
        "scancode_waitmsg",
        "<EventKey>scan</EventKey><ScanCodeInfo><ScanType>qrcode</ScanType>\
         <ScanResult>r &amp; s</ScanResult></ScanCodeInfo><Unmodelled>kept</Unmodelled>",
    );
    let report = rt.call(&reader, &default_context(), &msg).await;
    assert_eq!(
        reply_text(report.result),
        "ToUserName=gh_x\nFromUserName=o_user\nCreateTime=1700000000\nMsgType=event\n\
         Event=scancode_waitmsg\nEventKey=scan\nScanCodeInfo/ScanType=qrcode\n\
         ScanCodeInfo/ScanResult=r & s\nUnmodelled=kept"
    );
}

#[tokio::test]
async fn a_warm_instance_reads_the_fields_of_the_message_it_is_handling() {
    let rt = runtime();
    let reader = load(&rt, "field-reader", wxhost_test_plugins::FIELD_READER);
    let (ctx, warm) = (default_context(), WarmInstances::default());
    for content in ["first Content", "first FromUserName", "first Nothing"] {
        let msg = Arc::new(text("o_second", content));
        let report = rt
            .call_with(&reader, &ctx, Some(&warm), &msg, &PushScope::default())
            .await;
        let expected = match content {
            "first Content" => "first Content",
            "first FromUserName" => "o_second",
            _ => "none",
        };
        assert_eq!(reply_text(report.result), expected);
    }
    assert_eq!(warm.idle_count(), 1, "one instance served the three calls");
}
