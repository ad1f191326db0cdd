//! The wit-bindgen bindings of the `plugin` world (wasm builds only), the conversions between
//! them and the SDK's types, and the wasm side of the capabilities.

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    pub_export_macro: true,
    default_bindings_module: "::wxhost_sdk::bindings",
    export_macro_name: "__export_plugin",
});

use std::sync::atomic::{AtomicU64, Ordering};

use self::wxhost::plugin::{raw_fields, types as wit};
use crate::message::{
    Content, Envelope, Event, Field, Fields, SubscribeMsgItem, SubscribeMsgSentItem,
};
use crate::reply::{Article, Outcome as SdkOutcome, Reply};

/// The number of the call being handled, so that raw fields are fetched only for its message.
static CALL: AtomicU64 = AtomicU64::new(0);

/// Runs plugin `P` on a message from the host (called by the code [`crate::export!`] generates).
pub fn handle<P: crate::Plugin>(msg: Message) -> Result<Outcome, String> {
    // Importing `raw-fields` tells the host to leave `msg.fields` empty; the reference keeps
    // the import even in a plugin that never reads fields (the linker would drop it).
    core::hint::black_box(raw_fields::get as fn() -> Vec<wit::Field>);
    let call = CALL.fetch_add(1, Ordering::Relaxed) + 1;
    P::handle(&message(msg, call))
        .map(outcome)
        .map_err(|e| e.to_string())
}

/// The wasm side of the capabilities (see `runtime`).
pub(crate) mod imports {
    use super::wxhost::plugin::{config, early_reply, kv as wkv, log as wlog, wechat_api as wapi};
    use crate::log::Level;
    use crate::wechat::{ApiError, CustomMessage, Method, TemplateMessage};
    use crate::{http, kv};

    /// The raw fields of call `call`'s message: fetched while that call runs, none after.
    pub fn raw_fields(call: u64) -> Vec<crate::Field> {
        if super::CALL.load(super::Ordering::Relaxed) == call {
            super::fields(super::raw_fields::get())
        } else {
            Vec::new()
        }
    }

    pub fn early_reply(reply: crate::Reply) -> Result<(), String> {
        early_reply::send(&super::reply(reply))
    }

    fn api_error(e: wapi::Error) -> ApiError {
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

    pub fn send_custom(to_user: Option<&str>, message: &CustomMessage) -> Result<(), ApiError> {
        let message = match message.clone() {
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
            } => wapi::CustomMessage::Music(super::wit::MusicReply {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            }),
            CustomMessage::News(a) => wapi::CustomMessage::News(super::wit::Article {
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
        };
        wapi::send_custom(to_user, &message).map_err(api_error)
    }

    pub fn send_template(message: &TemplateMessage) -> Result<u64, ApiError> {
        let message = message.clone();
        wapi::send_template(&wapi::TemplateMessage {
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
        })
        .map_err(api_error)
    }

    pub fn api_call(
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<String>,
    ) -> Result<String, ApiError> {
        let method = match method {
            Method::Get => wapi::Method::Get,
            Method::Post => wapi::Method::Post,
        };
        wapi::call(method, path, query, body.as_deref()).map_err(api_error)
    }

    /// One request through `wasi:http/outgoing-handler`: the body is written after `handle`
    /// (the host reads it while it sends) and always finished, the response read whole.
    pub fn http_send(request: &http::Request) -> Result<http::Response, http::Error> {
        use wasip2::http::outgoing_handler;
        use wasip2::http::types::{
            ErrorCode, Fields, Method as M, OutgoingBody, OutgoingRequest, Scheme,
        };
        use wasip2::io::streams::StreamError;

        let failed = |what: &str| http::Error::Failed(what.to_owned());
        let (https, authority, path) = http::split_url(&request.url)?;
        let headers: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&headers).map_err(|e| failed(&format!("header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let method = match request.method.to_ascii_uppercase().as_str() {
            "GET" => M::Get,
            "POST" => M::Post,
            "PUT" => M::Put,
            "DELETE" => M::Delete,
            "PATCH" => M::Patch,
            "HEAD" => M::Head,
            "OPTIONS" => M::Options,
            other => M::Other(other.to_owned()),
        };
        let scheme = if https { Scheme::Https } else { Scheme::Http };
        outgoing
            .set_method(&method)
            .map_err(|()| failed("method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| failed("scheme"))?;
        outgoing
            .set_authority(Some(authority))
            .map_err(|()| http::Error::InvalidUrl(request.url.clone()))?;
        outgoing
            .set_path_with_query(Some(&path))
            .map_err(|()| http::Error::InvalidUrl(request.url.clone()))?;
        let body = outgoing.body().map_err(|()| failed("request body"))?;
        let code = |e: ErrorCode| match e {
            ErrorCode::HttpRequestDenied => http::Error::Denied,
            other => http::Error::Failed(format!("{other:?}")),
        };
        let pending = outgoing_handler::handle(outgoing, None).map_err(code)?;
        {
            let stream = body.write().map_err(|()| failed("request body"))?;
            for chunk in request.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| failed(&format!("writing the body: {e:?}")))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(code)?;
        pending.subscribe().block();
        let response = pending
            .get()
            .ok_or_else(|| failed("no response"))?
            .map_err(|()| failed("response taken twice"))?
            .map_err(code)?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|()| failed("response body"))?;
        let mut body = Vec::new();
        {
            let stream = incoming.stream().map_err(|()| failed("response body"))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(failed(&format!(
                            "reading the body: {}",
                            e.to_debug_string()
                        )));
                    }
                }
            }
        }
        Ok(http::Response {
            status,
            headers,
            body,
        })
    }

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wlog::Level::Trace,
            Level::Debug => wlog::Level::Debug,
            Level::Info => wlog::Level::Info,
            Level::Warn => wlog::Level::Warn,
            Level::Error => wlog::Level::Error,
        };
        wlog::log(level, message);
    }

    pub fn config_get(key: &str) -> Option<String> {
        config::get(key)
    }

    pub fn config_all() -> String {
        config::get_all()
    }

    fn error(e: wkv::Error) -> kv::Error {
        match e {
            wkv::Error::KeyTooLong(n) => kv::Error::KeyTooLong(n),
            wkv::Error::ValueTooLarge(n) => kv::Error::ValueTooLarge(n),
            wkv::Error::QuotaExceeded(why) => kv::Error::QuotaExceeded(why),
            wkv::Error::NotANumber => kv::Error::NotANumber,
            wkv::Error::Overflow => kv::Error::Overflow,
            wkv::Error::Unavailable(why) => kv::Error::Unavailable(why),
        }
    }

    pub fn kv_get(key: &str) -> Result<Option<Vec<u8>>, kv::Error> {
        wkv::get(key).map_err(error)
    }

    pub fn kv_set(key: &str, value: &[u8], ttl: Option<u32>) -> Result<(), kv::Error> {
        wkv::set(key, value, ttl).map_err(error)
    }

    pub fn kv_delete(key: &str) -> Result<bool, kv::Error> {
        wkv::delete(key).map_err(error)
    }

    pub fn kv_increment(key: &str, delta: i64) -> Result<i64, kv::Error> {
        wkv::increment(key, delta).map_err(error)
    }
}

fn message(m: Message, call: u64) -> crate::Message {
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

fn fields(list: Vec<wit::Field>) -> Vec<Field> {
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

fn outcome(o: SdkOutcome) -> Outcome {
    match o {
        SdkOutcome::Reply(r) => Outcome::Reply(reply(r)),
        SdkOutcome::Handled => Outcome::Handled,
        SdkOutcome::Pass => Outcome::Pass,
    }
}

fn reply(r: Reply) -> wit::Reply {
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
