//! The SDK's mirror of the message model, checked end to end: every message and event type the
//! host parses goes through the real runtime to `message-mirror`, which hands over the
//! message as the SDK received it (JSON, in kv: every reply field is capped, and a message's
//! fields can be longer), and each field is compared with what the host parsed.
//! Both sides serialise in one shape, so a field lost, renamed or swapped on the way (host
//! conversion, WIT, SDK conversion) shows as a difference at its path.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use wxhost::plugin::{Limits, Outcome};
use wxhost::storage::{KvStore, MemoryKv, Namespace};
use wxhost::wechat::{Message, Reply};
use wxhost_tests::plugins;

use super::{context, load, runtime};

/// The kv key message-mirror keeps the message under, and the text it answers.
const MIRROR_KEY: &str = "message-mirror";

/// The common head of every push in the corpus.
const HEAD: &str = "<ToUserName><![CDATA[gh_3f2ea8b5c1d0]]></ToUserName>\
    <FromUserName><![CDATA[oTgQx5d1jXm7N3kR6cL0pWvZyE2s]]></FromUserName>\
    <CreateTime>1700000000</CreateTime>";

/// Every message and event type the host models, each optional field present in one sample
/// and absent in another, and fields of the same type holding different values (so that two
/// swapped fields differ).
const CORPUS: &[&str] = &[
    // Messages.
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好\n<b>&amp; 😀 ]]]]><![CDATA[>]]></Content>\
     <MsgId>18446744073709551615</MsgId>",
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[满意]]></Content><MsgId>24358914938123456</MsgId>\
     <bizmsgmenuid>101</bizmsgmenuid><MsgDataId>2247483651</MsgDataId><Idx>1</Idx>",
    "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.qpic.cn/mmbiz_jpg/abc/0]]></PicUrl>\
     <MediaId><![CDATA[media_img_1]]></MediaId><MsgId>2</MsgId>",
    "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]></Format>\
     <Recognition><![CDATA[腾讯微信团队]]></Recognition><MsgId>3</MsgId>",
    "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[speex]]></Format>\
     <MsgId>4</MsgId>",
    "<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[v1]]></MediaId>\
     <ThumbMediaId><![CDATA[t1]]></ThumbMediaId><MsgId>5</MsgId>",
    "<MsgType><![CDATA[shortvideo]]></MsgType><MediaId><![CDATA[v2]]></MediaId>\
     <ThumbMediaId><![CDATA[t2]]></ThumbMediaId><MsgId>6</MsgId>",
    "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X>\
     <Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[广州市天河区]]></Label>\
     <MsgId>7</MsgId>",
    "<MsgType><![CDATA[location]]></MsgType><Location_X>-33.8688197</Location_X>\
     <Location_Y>151.2092955</Location_Y><Label><![CDATA[Sydney]]></Label><MsgId>8</MsgId>",
    "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[公众平台官网链接]]></Title>\
     <Description><![CDATA[官网的描述]]></Description><Url><![CDATA[https://mp.weixin.qq.com]]></Url>\
     <MsgId>9</MsgId>",
    "<MsgType><![CDATA[file]]></MsgType><Title><![CDATA[report.pdf]]></Title>\
     <Description><![CDATA[1.2MB]]></Description><FileKey><![CDATA[fk1]]></FileKey>\
     <FileMd5><![CDATA[5a1b]]></FileMd5><FileTotalLen>1258291</FileTotalLen><MsgId>10</MsgId>",
    "<MsgType><![CDATA[file]]></MsgType><Title><![CDATA[notes.txt]]></Title>\
     <Description><![CDATA[]]></Description><FileKey><![CDATA[fk2]]></FileKey>\
     <FileMd5><![CDATA[9c0d]]></FileMd5><MsgId>11</MsgId>",
    "<MsgType><![CDATA[miniprogrampage]]></MsgType><Title><![CDATA[商品]]></Title>\
     <AppId><![CDATA[wx_mini]]></AppId><PagePath><![CDATA[pages/item?id=1]]></PagePath>\
     <ThumbUrl><![CDATA[http://t/1.jpg]]></ThumbUrl><ThumbMediaId><![CDATA[tm1]]></ThumbMediaId>\
     <MsgId>12</MsgId>",
    "<MsgType><![CDATA[hologram]]></MsgType><Beam><![CDATA[on]]></Beam><MsgId>13</MsgId>",
    // Events.
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>\
     <EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[gQH47joAAAAAAAAAASxodHRw]]></Ticket>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[unsubscribe]]></Event>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event>\
     <EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[42]]></EventKey>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude>\
     <Longitude>113.352425</Longitude><Precision>119.385040</Precision>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event>\
     <EventKey><![CDATA[V1001_TODAY_MUSIC]]></EventKey>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[VIEW]]></Event>\
     <EventKey><![CDATA[https://www.qq.com/]]></EventKey><MenuId>208396993</MenuId>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[VIEW]]></Event>\
     <EventKey><![CDATA[https://example.com/?a=1&amp;b=2]]></EventKey>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[scancode_push]]></Event>\
     <EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>\
     <ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[scancode_waitmsg]]></Event>\
     <EventKey><![CDATA[7]]></EventKey><ScanCodeInfo><ScanType><![CDATA[barcode]]></ScanType>\
     <ScanResult><![CDATA[EAN_13,6901234567892]]></ScanResult></ScanCodeInfo>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[pic_sysphoto]]></Event><EventKey><![CDATA[6]]></EventKey>\
     <SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum>\
     </item></PicList></SendPicsInfo>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[pic_photo_or_album]]></Event>\
     <EventKey><![CDATA[8]]></EventKey><SendPicsInfo><Count>2</Count><PicList>\
     <item><PicMd5Sum><![CDATA[aa]]></PicMd5Sum></item><item><PicMd5Sum><![CDATA[bb]]></PicMd5Sum></item>\
     </PicList></SendPicsInfo>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[pic_weixin]]></Event><EventKey><![CDATA[9]]></EventKey>\
     <SendPicsInfo><Count>0</Count><PicList></PicList></SendPicsInfo>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[location_select]]></Event>\
     <EventKey><![CDATA[6]]></EventKey><SendLocationInfo><Location_X><![CDATA[23.1]]></Location_X>\
     <Location_Y><![CDATA[113.2]]></Location_Y><Scale><![CDATA[15]]></Scale>\
     <Label><![CDATA[ 广州市海珠区客村艺苑路 106号]]></Label><Poiname><![CDATA[艺苑]]></Poiname>\
     </SendLocationInfo>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[location_select]]></Event>\
     <EventKey><![CDATA[7]]></EventKey><SendLocationInfo><Location_X><![CDATA[-1.5]]></Location_X>\
     <Location_Y><![CDATA[36.8]]></Location_Y><Scale><![CDATA[12]]></Scale>\
     <Label><![CDATA[Nairobi]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[view_miniprogram]]></Event>\
     <EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>MENUID</MenuId>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[view_miniprogram]]></Event>\
     <EventKey><![CDATA[pages/me/me]]></EventKey>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>\
     <MsgID>200163836</MsgID><Status><![CDATA[failed:user block]]></Status>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[MASSSENDJOBFINISH]]></Event>\
     <MsgID>1000001625</MsgID><Status><![CDATA[send success]]></Status><TotalCount>100</TotalCount>\
     <FilterCount>80</FilterCount><SentCount>75</SentCount><ErrorCount>5</ErrorCount>\
     <CopyrightCheckResult><Count>0</Count><ResultList></ResultList><CheckState>1</CheckState>\
     </CopyrightCheckResult>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[MASSSENDJOBFINISH]]></Event>\
     <Status><![CDATA[err(30003)]]></Status>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe_msg_popup_event]]></Event>\
     <SubscribeMsgPopupEvent><List><TemplateId><![CDATA[T1]]></TemplateId>\
     <SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List>\
     <List><TemplateId><![CDATA[T2]]></TemplateId><SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString>\
     <PopupScene>1</PopupScene></List></SubscribeMsgPopupEvent>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe_msg_change_event]]></Event>\
     <SubscribeMsgChangeEvent><List><TemplateId><![CDATA[T3]]></TemplateId>\
     <SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString></List></SubscribeMsgChangeEvent>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe_msg_sent_event]]></Event>\
     <SubscribeMsgSentEvent><List><TemplateId><![CDATA[T4]]></TemplateId>\
     <MsgID><![CDATA[1700827132819554304]]></MsgID><ErrorCode><![CDATA[0]]></ErrorCode>\
     <ErrorStatus><![CDATA[success]]></ErrorStatus></List></SubscribeMsgSentEvent>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[card_pass_check]]></Event>\
     <CardId><![CDATA[c1]]></CardId>",
    "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[user_get_card]]></Event>\
     <EventKey><![CDATA[k1]]></EventKey>",
];

/// The `type` (and `event`) tag of every content and event variant the host has (add one here
/// and a sample to [`CORPUS`] with each new variant): the corpus is checked to hold each.
const VARIANTS: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "short_video",
    "location",
    "link",
    "file",
    "mini_program_page",
    "other",
    "event/subscribe",
    "event/unsubscribe",
    "event/scan",
    "event/location",
    "event/click",
    "event/view",
    "event/scan_code",
    "event/pictures",
    "event/location_select",
    "event/view_mini_program",
    "event/template_send_job_finish",
    "event/mass_send_job_finish",
    "event/subscribe_msg_popup",
    "event/subscribe_msg_change",
    "event/subscribe_msg_sent",
    "event/other",
];

/// The top-level fields of the host's message and of the SDK's: the same but for `tenant`
/// (only plugins see it) and `msg_data_id`/`idx` (not in the WIT message: plugins read them
/// from the raw fields).
const HOST_KEYS: &[&str] = &[
    "to_user",
    "from_user",
    "create_time",
    "msg_id",
    "msg_data_id",
    "idx",
    "content",
    "fields",
];
const SDK_KEYS: &[&str] = &[
    "tenant",
    "to_user",
    "from_user",
    "create_time",
    "msg_id",
    "content",
    "fields",
];

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Compares two JSON values field by field, naming the first path where they differ.
fn assert_same(path: &str, host: &Value, sdk: &Value, push: &str) {
    match (host, sdk) {
        (Value::Object(h), Value::Object(s)) => {
            assert_eq!(
                keys(host),
                keys(sdk),
                "{path}: the host and the SDK name different fields\n{push}"
            );
            for (key, h) in h {
                assert_same(&format!("{path}.{key}"), h, &s[key], push);
            }
        }
        (Value::Array(h), Value::Array(s)) => {
            assert_eq!(h.len(), s.len(), "{path}: lengths differ\n{push}");
            for (i, (h, s)) in h.iter().zip(s).enumerate() {
                assert_same(&format!("{path}[{i}]"), h, s, push);
            }
        }
        _ => assert_eq!(host, sdk, "{path}: host ≠ SDK\n{push}"),
    }
}

/// The leaves of the host's element tree (its JSON) as the SDK's raw fields: `/`-separated
/// paths under `<xml>`, in document order.
fn leaves(element: &Value, prefix: &str, out: &mut Vec<Value>) {
    for child in element["children"].as_array().into_iter().flatten() {
        let name = child["name"].as_str().unwrap_or_default();
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        match child["children"].as_array() {
            Some(children) if !children.is_empty() => leaves(child, &path, out),
            _ => out.push(json!({ "path": path, "value": child["text"] })),
        }
    }
}

/// The variant tag of a content as [`VARIANTS`] names it.
fn variant(content: &Value) -> String {
    match (content["type"].as_str(), content["event"].as_str()) {
        (Some("event"), Some(event)) => format!("event/{event}"),
        (Some(kind), _) => kind.to_owned(),
        _ => panic!("content without a type: {content}"),
    }
}

/// The message as the plugin received it: the JSON it wrote to `kv` before answering.
async fn mirrored(
    outcome: Result<Outcome, wxhost::plugin::Error>,
    kv: &dyn KvStore,
    push: &str,
) -> Value {
    match outcome {
        Ok(Outcome::Reply(Reply::Text { content })) if content == MIRROR_KEY => {}
        other => panic!("expected message-mirror's answer, got {other:?}\n{push}"),
    }
    let namespace = Namespace::new("demo", "message-mirror");
    let json = kv
        .get(&namespace, MIRROR_KEY)
        .await
        .expect("kv reads")
        .expect("the plugin wrote the message");
    serde_json::from_slice(&json).expect("the plugin wrote JSON")
}

#[tokio::test]
async fn every_typed_field_reaches_a_plugin_as_the_host_parsed_it() {
    let rt = runtime();
    let mirror = load(&rt, "message-mirror", plugins::MESSAGE_MIRROR);
    let kv = Arc::new(MemoryKv::default());
    let ctx = context("demo", json!({}), kv.clone(), Limits::default());
    let mut seen = BTreeSet::new();
    // A text longer than a text reply can hold: the transport must not depend on the size.
    let long = format!(
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{}]]></Content><MsgId>14</MsgId>",
        "长".repeat(1500)
    );
    for rest in CORPUS.iter().copied().chain([long.as_str()]) {
        let push = format!("<xml>{HEAD}{rest}</xml>");
        let msg = Message::parse(&push).unwrap_or_else(|e| panic!("{push}: {e}"));
        let host = serde_json::to_value(&msg).expect("the host's message serialises");
        let sdk = mirrored(rt.call(&mirror, &ctx, &msg).await.result, &*kv, &push).await;

        let expected: BTreeSet<&str> = HOST_KEYS.iter().copied().collect();
        assert_eq!(keys(&host), expected, "the host's message fields changed");
        let expected: BTreeSet<&str> = SDK_KEYS.iter().copied().collect();
        assert_eq!(
            keys(&sdk),
            expected,
            "the SDK's message fields changed\n{push}"
        );

        assert_eq!(sdk["tenant"], json!("demo"), "{push}");
        for key in ["to_user", "from_user", "create_time", "msg_id", "content"] {
            assert_same(key, &host[key], &sdk[key], &push);
        }
        let mut fields = Vec::new();
        leaves(&host["fields"], "", &mut fields);
        assert_same("fields", &Value::Array(fields), &sdk["fields"], &push);

        // The SDK reads its own JSON back to the same message.
        let back: wxhost_sdk::Message =
            serde_json::from_value(sdk.clone()).expect("the SDK's message deserialises");
        assert_eq!(serde_json::to_value(&back).expect("serialises"), sdk);
        seen.insert(variant(&host["content"]));
    }
    let all: BTreeSet<String> = VARIANTS.iter().map(|v| (*v).to_owned()).collect();
    assert_eq!(seen, all, "the corpus holds every message and event type");
}
