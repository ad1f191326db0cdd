//! Conversions between the protocol model (`wechat`) and the WIT types plugins see.

use super::bindings::wxhost::plugin::types as wit;
use crate::wechat::{self, Content, Event, xml::Element};

/// The WIT message for `msg`, pushed to `tenant`; its raw fields only `with_fields` (a plugin
/// that imports `raw-fields` asks for them instead).
pub fn message(tenant: &str, msg: &wechat::Message, with_fields: bool) -> wit::Message {
    wit::Message {
        envelope: wit::Envelope {
            tenant: tenant.to_owned(),
            to_user: msg.to_user.clone(),
            from_user: msg.from_user.clone(),
            create_time: msg.create_time,
            msg_id: msg.msg_id,
        },
        content: content(&msg.content),
        fields: if with_fields { fields(msg) } else { Vec::new() },
    }
}

/// Every leaf field of `msg` as received, in document order.
pub fn fields(msg: &wechat::Message) -> Vec<wit::Field> {
    let mut fields = Vec::with_capacity(msg.fields.children.len());
    flatten(&msg.fields, "", &mut fields);
    fields
}

/// Every leaf under `el` as a `/`-separated path and its text, in document order.
fn flatten(el: &Element, prefix: &str, out: &mut Vec<wit::Field>) {
    for child in &el.children {
        let path = if prefix.is_empty() {
            child.name.clone()
        } else {
            format!("{prefix}/{}", child.name)
        };
        if child.children.is_empty() {
            out.push(wit::Field {
                path,
                value: child.text.clone(),
            });
        } else {
            flatten(child, &path, out);
        }
    }
}

fn content(c: &Content) -> wit::Content {
    match c {
        Content::Text {
            content,
            biz_msg_menu_id,
        } => wit::Content::Text(wit::Text {
            content: content.clone(),
            biz_msg_menu_id: biz_msg_menu_id.clone(),
        }),
        Content::Image { pic_url, media_id } => wit::Content::Image(wit::Image {
            pic_url: pic_url.clone(),
            media_id: media_id.clone(),
        }),
        Content::Voice {
            media_id,
            format,
            recognition,
        } => wit::Content::Voice(wit::Voice {
            media_id: media_id.clone(),
            format: format.clone(),
            recognition: recognition.clone(),
        }),
        Content::Video {
            media_id,
            thumb_media_id,
        } => wit::Content::Video(wit::Video {
            media_id: media_id.clone(),
            thumb_media_id: thumb_media_id.clone(),
        }),
        Content::ShortVideo {
            media_id,
            thumb_media_id,
        } => wit::Content::ShortVideo(wit::Video {
            media_id: media_id.clone(),
            thumb_media_id: thumb_media_id.clone(),
        }),
        Content::Location {
            latitude,
            longitude,
            scale,
            label,
        } => wit::Content::Location(wit::Location {
            latitude: *latitude,
            longitude: *longitude,
            scale: *scale,
            label: label.clone(),
        }),
        Content::Link {
            title,
            description,
            url,
        } => wit::Content::Link(wit::Link {
            title: title.clone(),
            description: description.clone(),
            url: url.clone(),
        }),
        Content::File {
            title,
            description,
            file_key,
            file_md5,
            file_total_len,
        } => wit::Content::File(wit::File {
            title: title.clone(),
            description: description.clone(),
            file_key: file_key.clone(),
            file_md5: file_md5.clone(),
            file_total_len: *file_total_len,
        }),
        Content::MiniProgramPage {
            title,
            app_id,
            page_path,
            thumb_url,
            thumb_media_id,
        } => wit::Content::MiniProgramPage(wit::MiniProgramPage {
            title: title.clone(),
            app_id: app_id.clone(),
            page_path: page_path.clone(),
            thumb_url: thumb_url.clone(),
            thumb_media_id: thumb_media_id.clone(),
        }),
        Content::Event(e) => wit::Content::Event(event(e)),
        Content::Other { msg_type } => wit::Content::Other(msg_type.clone()),
    }
}

fn subscribe_items(items: &[wechat::message::SubscribeMsgItem]) -> Vec<wit::SubscribeMsgItem> {
    items
        .iter()
        .map(|i| wit::SubscribeMsgItem {
            template_id: i.template_id.clone(),
            status: i.status.clone(),
            popup_scene: i.popup_scene.clone(),
        })
        .collect()
}

fn event(e: &Event) -> wit::Event {
    match e {
        Event::Subscribe { scene, ticket } => wit::Event::Subscribe(wit::SubscribeEvent {
            scene: scene.clone(),
            ticket: ticket.clone(),
        }),
        Event::Unsubscribe => wit::Event::Unsubscribe,
        Event::Scan { scene, ticket } => wit::Event::Scan(wit::ScanEvent {
            scene: scene.clone(),
            ticket: ticket.clone(),
        }),
        Event::Location {
            latitude,
            longitude,
            precision,
        } => wit::Event::Location(wit::LocationEvent {
            latitude: *latitude,
            longitude: *longitude,
            precision: *precision,
        }),
        Event::Click { key } => wit::Event::Click(key.clone()),
        Event::View { url, menu_id } => wit::Event::View(wit::ViewEvent {
            url: url.clone(),
            menu_id: menu_id.clone(),
        }),
        Event::ScanCode {
            waits_for_reply,
            key,
            scan_type,
            scan_result,
        } => wit::Event::ScanCode(wit::ScanCodeEvent {
            waits_for_reply: *waits_for_reply,
            key: key.clone(),
            scan_type: scan_type.clone(),
            scan_result: scan_result.clone(),
        }),
        Event::Pictures {
            source,
            key,
            count,
            md5s,
        } => wit::Event::Pictures(wit::PicturesEvent {
            source: source.clone(),
            key: key.clone(),
            count: *count,
            md5s: md5s.clone(),
        }),
        Event::LocationSelect {
            key,
            latitude,
            longitude,
            scale,
            label,
            poi_name,
        } => wit::Event::LocationSelect(wit::LocationSelectEvent {
            key: key.clone(),
            latitude: *latitude,
            longitude: *longitude,
            scale: *scale,
            label: label.clone(),
            poi_name: poi_name.clone(),
        }),
        Event::ViewMiniProgram { page_path, menu_id } => {
            wit::Event::ViewMiniProgram(wit::ViewMiniProgramEvent {
                page_path: page_path.clone(),
                menu_id: menu_id.clone(),
            })
        }
        Event::TemplateSendJobFinish { msg_id, status } => {
            wit::Event::TemplateSendJobFinish(wit::TemplateSendJobFinishEvent {
                msg_id: *msg_id,
                status: status.clone(),
            })
        }
        Event::MassSendJobFinish {
            msg_id,
            status,
            total_count,
            filter_count,
            sent_count,
            error_count,
        } => wit::Event::MassSendJobFinish(wit::MassSendJobFinishEvent {
            msg_id: *msg_id,
            status: status.clone(),
            total_count: *total_count,
            filter_count: *filter_count,
            sent_count: *sent_count,
            error_count: *error_count,
        }),
        Event::SubscribeMsgPopup { items } => wit::Event::SubscribeMsgPopup(subscribe_items(items)),
        Event::SubscribeMsgChange { items } => {
            wit::Event::SubscribeMsgChange(subscribe_items(items))
        }
        Event::SubscribeMsgSent { items } => wit::Event::SubscribeMsgSent(
            items
                .iter()
                .map(|i| wit::SubscribeMsgSentItem {
                    template_id: i.template_id.clone(),
                    msg_id: i.msg_id.clone(),
                    error_code: i.error_code.clone(),
                    error_status: i.error_status.clone(),
                })
                .collect(),
        ),
        Event::Other { name, key } => wit::Event::Other(wit::OtherEvent {
            name: name.clone(),
            key: key.clone(),
        }),
    }
}

/// The protocol reply for a plugin's WIT reply (not yet validated).
pub fn reply(r: wit::Reply) -> wechat::Reply {
    match r {
        wit::Reply::Text(content) => wechat::Reply::Text { content },
        wit::Reply::Image(media_id) => wechat::Reply::Image { media_id },
        wit::Reply::Voice(media_id) => wechat::Reply::Voice { media_id },
        wit::Reply::Video(v) => wechat::Reply::Video {
            media_id: v.media_id,
            title: v.title,
            description: v.description,
        },
        wit::Reply::Music(m) => wechat::Reply::Music {
            title: m.title,
            description: m.description,
            music_url: m.music_url,
            hq_music_url: m.hq_music_url,
            thumb_media_id: m.thumb_media_id,
        },
        wit::Reply::News(articles) => wechat::Reply::News {
            articles: articles
                .into_iter()
                .map(|a| wechat::Article {
                    title: a.title,
                    description: a.description,
                    pic_url: a.pic_url,
                    url: a.url,
                })
                .collect(),
        },
        wit::Reply::TransferCustomerService(kf_account) => {
            wechat::Reply::TransferCustomerService { kf_account }
        }
    }
}
