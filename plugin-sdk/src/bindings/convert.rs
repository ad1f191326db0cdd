//! Conversions between the WIT types the host sends and receives and the SDK's own types.

use super::wit;
use super::wxhost::plugin::{kv as wkv, log as wlog, media as wmedia, wechat_api as wapi};
use super::{Message, Outcome};
use crate::log::Level;
use crate::message::{
    Content, Envelope, Event, Field, Fields, SubscribeMsgItem, SubscribeMsgSentItem,
};
use crate::reply::{Article, Outcome as SdkOutcome, Reply};
use crate::wechat::{ApiError, CustomMessage, Method, TemplateMessage};
use crate::{kv, media};

/// The SDK's message for the WIT message of call `call`.
pub(super) fn message(m: Message, call: u64) -> crate::Message {
    crate::Message {
        envelope: Envelope {
            tenant: m.envelope.tenant,
            to_user: m.envelope.to_user,
            from_user: m.envelope.from_user,
            create_time: m.envelope.create_time,
            msg_id: m.envelope.msg_id,
        },
        content: content(m.content),
        // Fields that came with the message are used as they are (the host sends none to a
        // plugin that imports `raw-fields`).
        fields: if m.fields.is_empty() {
            Fields::from_host(call)
        } else {
            Fields::from(fields(m.fields))
        },
    }
}

pub(super) fn fields(list: Vec<wit::Field>) -> Vec<Field> {
    list.into_iter()
        .map(|f| Field {
            path: f.path,
            value: f.value,
        })
        .collect()
}

fn content(c: wit::Content) -> Content {
    match c {
        wit::Content::Text(t) => Content::Text {
            content: t.content,
            biz_msg_menu_id: t.biz_msg_menu_id,
        },
        wit::Content::Image(i) => Content::Image {
            pic_url: i.pic_url,
            media_id: i.media_id,
        },
        wit::Content::Voice(v) => Content::Voice {
            media_id: v.media_id,
            format: v.format,
            recognition: v.recognition,
        },
        wit::Content::Video(v) => Content::Video {
            media_id: v.media_id,
            thumb_media_id: v.thumb_media_id,
        },
        wit::Content::ShortVideo(v) => Content::ShortVideo {
            media_id: v.media_id,
            thumb_media_id: v.thumb_media_id,
        },
        wit::Content::Location(l) => Content::Location {
            latitude: l.latitude,
            longitude: l.longitude,
            scale: l.scale,
            label: l.label,
        },
        wit::Content::Link(l) => Content::Link {
            title: l.title,
            description: l.description,
            url: l.url,
        },
        wit::Content::File(f) => Content::File {
            title: f.title,
            description: f.description,
            file_key: f.file_key,
            file_md5: f.file_md5,
            file_total_len: f.file_total_len,
        },
        wit::Content::MiniProgramPage(p) => Content::MiniProgramPage {
            title: p.title,
            app_id: p.app_id,
            page_path: p.page_path,
            thumb_url: p.thumb_url,
            thumb_media_id: p.thumb_media_id,
        },
        wit::Content::Event(e) => Content::Event(event(e)),
        wit::Content::Other(msg_type) => Content::Other { msg_type },
    }
}

fn items(items: Vec<wit::SubscribeMsgItem>) -> Vec<SubscribeMsgItem> {
    items
        .into_iter()
        .map(|i| SubscribeMsgItem {
            template_id: i.template_id,
            status: i.status,
            popup_scene: i.popup_scene,
        })
        .collect()
}

fn event(e: wit::Event) -> Event {
    match e {
        wit::Event::Subscribe(s) => Event::Subscribe {
            scene: s.scene,
            ticket: s.ticket,
        },
        wit::Event::Unsubscribe => Event::Unsubscribe,
        wit::Event::Scan(s) => Event::Scan {
            scene: s.scene,
            ticket: s.ticket,
        },
        wit::Event::Location(l) => Event::Location {
            latitude: l.latitude,
            longitude: l.longitude,
            precision: l.precision,
        },
        wit::Event::Click(key) => Event::Click { key },
        wit::Event::View(v) => Event::View {
            url: v.url,
            menu_id: v.menu_id,
        },
        wit::Event::ScanCode(s) => Event::ScanCode {
            waits_for_reply: s.waits_for_reply,
            key: s.key,
            scan_type: s.scan_type,
            scan_result: s.scan_result,
        },
        wit::Event::Pictures(p) => Event::Pictures {
            source: p.source,
            key: p.key,
            count: p.count,
            md5s: p.md5s,
        },
        wit::Event::LocationSelect(l) => Event::LocationSelect {
            key: l.key,
            latitude: l.latitude,
            longitude: l.longitude,
            scale: l.scale,
            label: l.label,
            poi_name: l.poi_name,
        },
        wit::Event::ViewMiniProgram(v) => Event::ViewMiniProgram {
            page_path: v.page_path,
            menu_id: v.menu_id,
        },
        wit::Event::TemplateSendJobFinish(t) => Event::TemplateSendJobFinish {
            msg_id: t.msg_id,
            status: t.status,
        },
        wit::Event::MassSendJobFinish(m) => Event::MassSendJobFinish {
            msg_id: m.msg_id,
            status: m.status,
            total_count: m.total_count,
            filter_count: m.filter_count,
            sent_count: m.sent_count,
            error_count: m.error_count,
        },
        wit::Event::SubscribeMsgPopup(list) => Event::SubscribeMsgPopup { items: items(list) },
        wit::Event::SubscribeMsgChange(list) => Event::SubscribeMsgChange { items: items(list) },
        wit::Event::SubscribeMsgSent(list) => Event::SubscribeMsgSent {
            items: list
                .into_iter()
                .map(|i| SubscribeMsgSentItem {
                    template_id: i.template_id,
                    msg_id: i.msg_id,
                    error_code: i.error_code,
                    error_status: i.error_status,
                })
                .collect(),
        },
        wit::Event::Other(o) => Event::Other {
            name: o.name,
            key: o.key,
        },
    }
}

pub(super) fn outcome(o: SdkOutcome) -> Outcome {
    match o {
        SdkOutcome::Reply(r) => Outcome::Reply(reply(r)),
        SdkOutcome::Handled => Outcome::Handled,
        SdkOutcome::Pass => Outcome::Pass,
    }
}

pub(super) fn reply(r: Reply) -> wit::Reply {
    match r {
        Reply::Text(text) => wit::Reply::Text(text),
        Reply::Image { media_id } => wit::Reply::Image(media_id),
        Reply::Voice { media_id } => wit::Reply::Voice(media_id),
        Reply::Video {
            media_id,
            title,
            description,
        } => wit::Reply::Video(wit::VideoReply {
            media_id,
            title,
            description,
        }),
        Reply::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } => wit::Reply::Music(wit::MusicReply {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        }),
        Reply::News(articles) => wit::Reply::News(
            articles
                .into_iter()
                .map(|a: Article| wit::Article {
                    title: a.title,
                    description: a.description,
                    pic_url: a.pic_url,
                    url: a.url,
                })
                .collect(),
        ),
        Reply::TransferCustomerService { kf_account } => {
            wit::Reply::TransferCustomerService(kf_account)
        }
    }
}

pub(super) fn api_error(e: wapi::Error) -> ApiError {
    match e {
        wapi::Error::Denied(why) => ApiError::Denied(why),
        wapi::Error::Wechat(e) => ApiError::WeChat {
            code: e.code,
            message: e.message,
        },
        wapi::Error::Invalid(why) => ApiError::Invalid(why),
        wapi::Error::Unavailable(why) => ApiError::Unavailable(why),
    }
}

pub(super) fn media_kind(kind: media::Kind) -> wmedia::Kind {
    match kind {
        media::Kind::Image => wmedia::Kind::Image,
        media::Kind::Voice => wmedia::Kind::Voice,
        media::Kind::Video => wmedia::Kind::Video,
        media::Kind::Thumb => wmedia::Kind::Thumb,
    }
}

pub(super) fn kv_error(e: wkv::Error) -> kv::Error {
    match e {
        wkv::Error::KeyTooLong(n) => kv::Error::KeyTooLong(n),
        wkv::Error::ValueTooLarge(n) => kv::Error::ValueTooLarge(n),
        wkv::Error::QuotaExceeded(why) => kv::Error::QuotaExceeded(why),
        wkv::Error::NotANumber => kv::Error::NotANumber,
        wkv::Error::Overflow => kv::Error::Overflow,
        wkv::Error::Unavailable(why) => kv::Error::Unavailable(why),
    }
}

pub(super) fn custom_message(message: &CustomMessage) -> wapi::CustomMessage {
    match message.clone() {
        CustomMessage::Text(text) => wapi::CustomMessage::Text(text),
        CustomMessage::Image { media_id } => wapi::CustomMessage::Image(media_id),
        CustomMessage::Voice { media_id } => wapi::CustomMessage::Voice(media_id),
        CustomMessage::Video {
            media_id,
            thumb_media_id,
            title,
            description,
        } => wapi::CustomMessage::Video(wapi::VideoMessage {
            media_id,
            thumb_media_id,
            title,
            description,
        }),
        CustomMessage::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } => wapi::CustomMessage::Music(wit::MusicReply {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        }),
        CustomMessage::News(a) => wapi::CustomMessage::News(wit::Article {
            title: a.title,
            description: a.description,
            pic_url: a.pic_url,
            url: a.url,
        }),
        CustomMessage::MiniProgramPage {
            title,
            app_id,
            page_path,
            thumb_media_id,
        } => wapi::CustomMessage::MiniProgramPage(wapi::MiniProgramCard {
            title,
            app_id,
            page_path,
            thumb_media_id,
        }),
    }
}

pub(super) fn template_message(message: &TemplateMessage) -> wapi::TemplateMessage {
    let message = message.clone();
    wapi::TemplateMessage {
        to_user: message.to_user,
        template_id: message.template_id,
        url: message.url,
        mini_program: message
            .mini_program
            .map(|(app_id, page_path)| wapi::MiniProgramLink { app_id, page_path }),
        data: message
            .data
            .into_iter()
            .map(|(name, value, color)| wapi::TemplateField { name, value, color })
            .collect(),
        client_msg_id: message.client_msg_id,
    }
}

pub(super) fn method(method: Method) -> wapi::Method {
    match method {
        Method::Get => wapi::Method::Get,
        Method::Post => wapi::Method::Post,
    }
}

pub(super) fn level(level: Level) -> wlog::Level {
    match level {
        Level::Trace => wlog::Level::Trace,
        Level::Debug => wlog::Level::Debug,
        Level::Info => wlog::Level::Info,
        Level::Warn => wlog::Level::Warn,
        Level::Error => wlog::Level::Error,
    }
}
