//! A parse test per message and event type, from realistic samples.

use wxhost::wechat::message::{SubscribeMsgItem, SubscribeMsgSentItem};
use wxhost::wechat::{Content, Error, Event, Message};

const HEAD: &str = "<ToUserName><![CDATA[gh_3f2ea8b5c1d0]]></ToUserName>\
    <FromUserName><![CDATA[oTgQx5d1jXm7N3kR6cL0pWvZyE2s]]></FromUserName>\
    <CreateTime>1700000000</CreateTime>";

/// Parses a push made of the common head and `rest`, checking the head.
fn parse(rest: &str) -> Message {
    let xml = format!("<xml>\n  {HEAD}\n  {rest}\n</xml>");
    let message = Message::parse(&xml).unwrap_or_else(|e| panic!("{rest}: {e}"));
    assert_eq!(message.to_user, "gh_3f2ea8b5c1d0");
    assert_eq!(message.from_user, "oTgQx5d1jXm7N3kR6cL0pWvZyE2s");
    assert_eq!(message.create_time, 1_700_000_000);
    message
}

fn check(rest: &str, expected: Content) {
    assert_eq!(parse(rest).content, expected, "{rest}");
}

fn check_event(rest: &str, expected: Event) {
    let message = parse(&format!("<MsgType><![CDATA[event]]></MsgType>{rest}"));
    assert_eq!(message.msg_id, None);
    assert_eq!(message.content, Content::Event(expected), "{rest}");
}

#[test]
fn text() {
    let m = parse(
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好\n<b>&amp; 😀 ]]]]><![CDATA[>]]></Content>\
         <MsgId>24358914938123456</MsgId>",
    );
    assert_eq!(m.msg_id, Some(24358914938123456));
    assert_eq!(m.msg_type(), "text");
    assert_eq!(
        m.content,
        Content::Text {
            content: "你好\n<b>&amp; 😀 ]]>".into(),
            biz_msg_menu_id: None
        }
    );
}

#[test]
fn text_from_a_menu_reply_and_an_article_comment() {
    let m = parse(
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[满意]]></Content>\
         <MsgId>1</MsgId><bizmsgmenuid>101</bizmsgmenuid><MsgDataId>2247483651</MsgDataId><Idx>1</Idx>",
    );
    assert_eq!(
        m.content,
        Content::Text {
            content: "满意".into(),
            biz_msg_menu_id: Some("101".into())
        }
    );
    assert_eq!(m.msg_data_id.as_deref(), Some("2247483651"));
    assert_eq!(m.idx.as_deref(), Some("1"));
}

#[test]
fn text_with_control_characters_is_cleaned() {
    check(
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[a\u{1d}b\u{8}c]]></Content><MsgId>1</MsgId>",
        Content::Text {
            content: "abc".into(),
            biz_msg_menu_id: None,
        },
    );
}

#[test]
fn image() {
    check(
        "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://mmbiz.qpic.cn/mmbiz_jpg/abc/0]]></PicUrl>\
         <MediaId><![CDATA[media_img_1]]></MediaId><MsgId>1</MsgId>",
        Content::Image {
            pic_url: "http://mmbiz.qpic.cn/mmbiz_jpg/abc/0".into(),
            media_id: "media_img_1".into(),
        },
    );
}

#[test]
fn voice_with_and_without_recognition() {
    check(
        "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[amr]]></Format>\
         <Recognition><![CDATA[腾讯微信团队]]></Recognition><MsgId>1</MsgId>",
        Content::Voice {
            media_id: "m1".into(),
            format: "amr".into(),
            recognition: Some("腾讯微信团队".into()),
        },
    );
    check(
        "<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId><Format><![CDATA[speex]]></Format><MsgId>1</MsgId>",
        Content::Voice {
            media_id: "m1".into(),
            format: "speex".into(),
            recognition: None,
        },
    );
}

#[test]
fn video_and_short_video() {
    let fields = "<MediaId><![CDATA[v1]]></MediaId><ThumbMediaId><![CDATA[t1]]></ThumbMediaId><MsgId>1</MsgId>";
    check(
        &format!("<MsgType><![CDATA[video]]></MsgType>{fields}"),
        Content::Video {
            media_id: "v1".into(),
            thumb_media_id: "t1".into(),
        },
    );
    check(
        &format!("<MsgType><![CDATA[shortvideo]]></MsgType>{fields}"),
        Content::ShortVideo {
            media_id: "v1".into(),
            thumb_media_id: "t1".into(),
        },
    );
}

#[test]
fn location() {
    check(
        "<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y>\
         <Scale>20</Scale><Label><![CDATA[广州市天河区]]></Label><MsgId>1</MsgId>",
        Content::Location {
            latitude: 23.134521,
            longitude: 113.358803,
            scale: 20.0,
            label: "广州市天河区".into(),
        },
    );
}

#[test]
fn link() {
    check(
        "<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[公众平台官网链接]]></Title>\
         <Description><![CDATA[公众平台官网链接]]></Description><Url><![CDATA[https://mp.weixin.qq.com]]></Url><MsgId>1</MsgId>",
        Content::Link {
            title: "公众平台官网链接".into(),
            description: "公众平台官网链接".into(),
            url: "https://mp.weixin.qq.com".into(),
        },
    );
}

#[test]
fn file() {
    check(
        "<MsgType><![CDATA[file]]></MsgType><Title><![CDATA[report.pdf]]></Title><Description><![CDATA[1.2MB]]></Description>\
         <FileKey><![CDATA[fk1]]></FileKey><FileMd5><![CDATA[5a1b]]></FileMd5><FileTotalLen>1258291</FileTotalLen><MsgId>1</MsgId>",
        Content::File {
            title: "report.pdf".into(),
            description: "1.2MB".into(),
            file_key: "fk1".into(),
            file_md5: "5a1b".into(),
            file_total_len: Some(1258291),
        },
    );
}

#[test]
fn mini_program_page() {
    check(
        "<MsgType><![CDATA[miniprogrampage]]></MsgType><Title><![CDATA[商品]]></Title><AppId><![CDATA[wx_mini]]></AppId>\
         <PagePath><![CDATA[pages/item?id=1]]></PagePath><ThumbUrl><![CDATA[http://t/1.jpg]]></ThumbUrl>\
         <ThumbMediaId><![CDATA[tm1]]></ThumbMediaId><MsgId>1</MsgId>",
        Content::MiniProgramPage {
            title: "商品".into(),
            app_id: "wx_mini".into(),
            page_path: "pages/item?id=1".into(),
            thumb_url: "http://t/1.jpg".into(),
            thumb_media_id: "tm1".into(),
        },
    );
}

#[test]
fn unknown_message_type_is_kept_with_its_fields() {
    let m =
        parse("<MsgType><![CDATA[hologram]]></MsgType><Beam><![CDATA[on]]></Beam><MsgId>7</MsgId>");
    assert_eq!(
        m.content,
        Content::Other {
            msg_type: "hologram".into()
        }
    );
    assert_eq!(m.field("Beam"), Some("on"));
    assert_eq!(m.msg_id, Some(7));
}

#[test]
fn subscribe_plain_and_from_a_qr_code() {
    check_event(
        "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey>",
        Event::Subscribe {
            scene: None,
            ticket: None,
        },
    );
    check_event(
        "<Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123123]]></EventKey>\
         <Ticket><![CDATA[gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw==]]></Ticket>",
        Event::Subscribe {
            scene: Some("123123".into()),
            ticket: Some(
                "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw=="
                    .into(),
            ),
        },
    );
}

#[test]
fn unsubscribe() {
    check_event("<Event><![CDATA[unsubscribe]]></Event>", Event::Unsubscribe);
}

#[test]
fn scan() {
    check_event(
        "<Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
        Event::Scan {
            scene: "SCENE_VALUE".into(),
            ticket: Some("TICKET".into()),
        },
    );
}

#[test]
fn location_report() {
    check_event(
        "<Event><![CDATA[LOCATION]]></Event><Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>",
        Event::Location {
            latitude: 23.137466,
            longitude: 113.352425,
            precision: 119.38504,
        },
    );
}

#[test]
fn click_and_view() {
    check_event(
        "<Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[V1001_TODAY_MUSIC]]></EventKey>",
        Event::Click {
            key: "V1001_TODAY_MUSIC".into(),
        },
    );
    check_event(
        "<Event><![CDATA[VIEW]]></Event><EventKey><![CDATA[https://www.qq.com/]]></EventKey><MenuId>208396993</MenuId>",
        Event::View {
            url: "https://www.qq.com/".into(),
            menu_id: Some("208396993".into()),
        },
    );
}

#[test]
fn scancode_push_and_waitmsg() {
    let info = "<ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>";
    check_event(
        &format!(
            "<Event><![CDATA[scancode_push]]></Event><EventKey><![CDATA[6]]></EventKey>{info}"
        ),
        Event::ScanCode {
            waits_for_reply: false,
            key: "6".into(),
            scan_type: "qrcode".into(),
            scan_result: "1".into(),
        },
    );
    check_event(
        &format!(
            "<Event><![CDATA[scancode_waitmsg]]></Event><EventKey><![CDATA[6]]></EventKey>{info}"
        ),
        Event::ScanCode {
            waits_for_reply: true,
            key: "6".into(),
            scan_type: "qrcode".into(),
            scan_result: "1".into(),
        },
    );
}

#[test]
fn picture_events_with_one_or_many_items() {
    check_event(
        "<Event><![CDATA[pic_sysphoto]]></Event><EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>1</Count>\
         <PicList><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item></PicList></SendPicsInfo>",
        Event::Pictures {
            source: "pic_sysphoto".into(),
            key: "6".into(),
            count: Some(1),
            md5s: vec!["1b5f7c23b5bf75682a53e7b6d163e185".into()],
        },
    );
    check_event(
        "<Event><![CDATA[pic_photo_or_album]]></Event><EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>2</Count>\
         <PicList><item><PicMd5Sum><![CDATA[aa]]></PicMd5Sum></item><item><PicMd5Sum><![CDATA[bb]]></PicMd5Sum></item></PicList>\
         </SendPicsInfo>",
        Event::Pictures {
            source: "pic_photo_or_album".into(),
            key: "6".into(),
            count: Some(2),
            md5s: vec!["aa".into(), "bb".into()],
        },
    );
    check_event(
        "<Event><![CDATA[pic_weixin]]></Event><EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>0</Count><PicList></PicList></SendPicsInfo>",
        Event::Pictures {
            source: "pic_weixin".into(),
            key: "6".into(),
            count: Some(0),
            md5s: vec![],
        },
    );
}

#[test]
fn location_select() {
    check_event(
        "<Event><![CDATA[location_select]]></Event><EventKey><![CDATA[6]]></EventKey><SendLocationInfo>\
         <Location_X><![CDATA[23]]></Location_X><Location_Y><![CDATA[113]]></Location_Y><Scale><![CDATA[15]]></Scale>\
         <Label><![CDATA[ 广州市海珠区客村艺苑路 106号]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo>",
        Event::LocationSelect {
            key: "6".into(),
            latitude: 23.0,
            longitude: 113.0,
            scale: 15.0,
            label: " 广州市海珠区客村艺苑路 106号".into(),
            poi_name: None,
        },
    );
}

#[test]
fn view_miniprogram() {
    check_event(
        "<Event><![CDATA[view_miniprogram]]></Event><EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>MENUID</MenuId>",
        Event::ViewMiniProgram {
            page_path: "pages/index/index".into(),
            menu_id: Some("MENUID".into()),
        },
    );
}

#[test]
fn template_send_job_finish() {
    check_event(
        "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>200163836</MsgID><Status><![CDATA[failed:user block]]></Status>",
        Event::TemplateSendJobFinish {
            msg_id: Some(200163836),
            status: "failed:user block".into(),
        },
    );
}

#[test]
fn mass_send_job_finish() {
    check_event(
        "<Event><![CDATA[MASSSENDJOBFINISH]]></Event><MsgID>1000001625</MsgID><Status><![CDATA[err(30003)]]></Status>\
         <TotalCount>0</TotalCount><FilterCount>0</FilterCount><SentCount>0</SentCount><ErrorCount>0</ErrorCount>\
         <CopyrightCheckResult><Count>0</Count><ResultList></ResultList><CheckState>1</CheckState></CopyrightCheckResult>",
        Event::MassSendJobFinish {
            msg_id: Some(1000001625),
            status: "err(30003)".into(),
            total_count: Some(0),
            filter_count: Some(0),
            sent_count: Some(0),
            error_count: Some(0),
        },
    );
}

#[test]
fn subscribe_msg_popup_with_one_and_with_several_lists() {
    let list = |id: &str, status: &str| {
        format!(
            "<List><TemplateId><![CDATA[{id}]]></TemplateId><SubscribeStatusString><![CDATA[{status}]]></SubscribeStatusString>\
             <PopupScene>2</PopupScene></List>"
        )
    };
    let item = |id: &str, status: &str| SubscribeMsgItem {
        template_id: id.into(),
        status: status.into(),
        popup_scene: Some("2".into()),
    };
    check_event(
        &format!(
            "<Event><![CDATA[subscribe_msg_popup_event]]></Event><SubscribeMsgPopupEvent>{}</SubscribeMsgPopupEvent>",
            list("VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc", "accept")
        ),
        Event::SubscribeMsgPopup {
            items: vec![item(
                "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc",
                "accept",
            )],
        },
    );
    check_event(
        &format!(
            "<Event><![CDATA[subscribe_msg_popup_event]]></Event><SubscribeMsgPopupEvent>{}{}</SubscribeMsgPopupEvent>",
            list("T1", "accept"),
            list("T2", "reject")
        ),
        Event::SubscribeMsgPopup {
            items: vec![item("T1", "accept"), item("T2", "reject")],
        },
    );
}

#[test]
fn subscribe_msg_change() {
    check_event(
        "<Event><![CDATA[subscribe_msg_change_event]]></Event><SubscribeMsgChangeEvent><List>\
         <TemplateId><![CDATA[T1]]></TemplateId><SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString>\
         </List></SubscribeMsgChangeEvent>",
        Event::SubscribeMsgChange {
            items: vec![SubscribeMsgItem {
                template_id: "T1".into(),
                status: "reject".into(),
                popup_scene: None,
            }],
        },
    );
}

#[test]
fn subscribe_msg_sent() {
    check_event(
        "<Event><![CDATA[subscribe_msg_sent_event]]></Event><SubscribeMsgSentEvent><List>\
         <TemplateId><![CDATA[T1]]></TemplateId><MsgID><![CDATA[1700827132819554304]]></MsgID>\
         <ErrorCode><![CDATA[0]]></ErrorCode><ErrorStatus><![CDATA[success]]></ErrorStatus></List></SubscribeMsgSentEvent>",
        Event::SubscribeMsgSent {
            items: vec![SubscribeMsgSentItem {
                template_id: "T1".into(),
                msg_id: "1700827132819554304".into(),
                error_code: "0".into(),
                error_status: "success".into(),
            }],
        },
    );
}

#[test]
fn unknown_event_is_kept_with_its_fields() {
    let m = parse(
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[card_pass_check]]></Event><CardId><![CDATA[c1]]></CardId>",
    );
    assert_eq!(
        m.content,
        Content::Event(Event::Other {
            name: "card_pass_check".into(),
            key: None
        })
    );
    assert_eq!(m.event_name(), Some("card_pass_check"));
    assert_eq!(m.field("CardId"), Some("c1"));
}

#[test]
fn missing_common_fields_are_named() {
    let cases = [
        (
            "<xml><FromUserName>a</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
            "ToUserName",
        ),
        (
            "<xml><ToUserName>a</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
            "FromUserName",
        ),
        (
            "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><MsgType>text</MsgType></xml>",
            "CreateTime",
        ),
        (
            "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime></xml>",
            "MsgType",
        ),
        (
            "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType></xml>",
            "Event",
        ),
    ];
    for (xml, field) in cases {
        assert_eq!(
            Message::parse(xml),
            Err(Error::MissingField(field)),
            "{xml}"
        );
    }
}

#[test]
fn invalid_numbers_are_named() {
    let m = Message::parse(&format!(
        "<xml>{HEAD}<MsgType>location</MsgType><Location_X>north</Location_X><Location_Y>1</Location_Y></xml>"
    ));
    assert_eq!(
        m,
        Err(Error::InvalidField {
            field: "Location_X",
            value: "north".into()
        })
    );
    let m = Message::parse(&format!(
        "<xml>{HEAD}<MsgType>text</MsgType><MsgId>-5</MsgId></xml>"
    ));
    assert!(matches!(m, Err(Error::InvalidField { field: "MsgId", .. })));
}
