//! The voice store the worker hands in: a JavaScript object (the npm package's IndexedDB store)
//! with `fetch(name) -> Promise<Uint8Array>` and `list() -> Promise<string[]>`.

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use kokoro_voice::{VoiceError, VoiceStore, check_voice_name};
use send_wrapper::SendWrapper;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// [`VoiceStore`] over a JavaScript object. The trait wants `Send`; a wasm instance has one
/// thread, and `SendWrapper` panics rather than let a value cross threads.
pub struct JsVoiceStore {
    object: SendWrapper<JsValue>,
}

impl JsVoiceStore {
    pub fn new(object: JsValue) -> Self {
        Self { object: SendWrapper::new(object) }
    }

    fn call(&self, method: &str, arg: Option<&str>) -> Result<Promise, VoiceError> {
        let err = |m: String| VoiceError::Io(format!("voice store {method}"), std::io::Error::other(m));
        let f: Function = Reflect::get(&self.object, &method.into())
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(|| err(format!("the store has no {method}() method")))?;
        let r = match arg {
            Some(a) => f.call1(&self.object, &a.into()),
            None => f.call0(&self.object),
        }
        .map_err(|e| err(js_message(&e)))?;
        Ok(Promise::resolve(&r))
    }
}

/// The message of a JavaScript error value (or its string form).
pub fn js_message(e: &JsValue) -> String {
    Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

impl VoiceStore for JsVoiceStore {
    fn list(&self) -> impl Future<Output = Result<Vec<String>, VoiceError>> + Send {
        let promise = self.call("list", None).map(SendWrapper::new);
        SendWrapper::new(async move {
            let value = JsFuture::from(promise?.take())
                .await
                .map_err(|e| VoiceError::Io("voice store list".into(), std::io::Error::other(js_message(&e))))?;
            Ok(Array::from(&value).iter().filter_map(|v| v.as_string()).collect())
        })
    }

    fn fetch(&self, name: &str) -> impl Future<Output = Result<Vec<u8>, VoiceError>> + Send {
        let name = name.to_string();
        let promise = check_voice_name(&name).map(|_| ()).and_then(|_| self.call("fetch", Some(&name))).map(SendWrapper::new);
        SendWrapper::new(async move {
            let value = JsFuture::from(promise?.take()).await.map_err(|e| {
                let message = js_message(&e);
                // The store rejects with name "UnknownVoice" for a 404: keep that distinct.
                match Reflect::get(&e, &"name".into()).ok().and_then(|n| n.as_string()).as_deref() {
                    Some("UnknownVoice") => VoiceError::Unknown(name.clone()),
                    _ => VoiceError::Io(format!("voice {name}"), std::io::Error::other(message)),
                }
            })?;
            Ok(Uint8Array::new(&value).to_vec())
        })
    }
}
