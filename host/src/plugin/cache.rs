//! The on-disk cache of compiled components, keyed by the wasm's SHA-256 and the engine's
//! compatibility hash, so a restart loads plugins without compiling them again.
//!
//! Only files this host wrote are ever deserialised: the cache directory belongs to the host,
//! users drop `.wasm` files elsewhere.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a loaded component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled from the wasm now (and cached, when there is a cache).
    Compiled,
    /// Loaded from the cache without compiling.
    Cache,
}

/// The hex SHA-256 of a wasm file: the plugin's identity in logs and in the cache.
pub fn wasm_hash(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

/// A directory of precompiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir` (none when `None`) for components compiled by `engine`.
    pub fn new(dir: Option<PathBuf>, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn path_for(&self, dir: &Path, hash: &str) -> PathBuf {
        dir.join(format!("{hash}-{}.cwasm", self.engine_key))
    }

    /// The component for `wasm` (whose hash is `hash`): from the cache when there, otherwise
    /// compiled and written to the cache (a cache write failure only costs the next start).
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        hash: &str,
    ) -> wasmtime::Result<(Component, Origin)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, wasm)?, Origin::Compiled));
        };
        let path = self.path_for(dir, hash);
        if path.is_file() {
            // SAFETY-RELEVANT: `deserialize_file` trusts its input. The file was written by
            // `store` below from `Engine::precompile_component` of this engine configuration
            // (the name carries the compatibility hash), in a directory only the host writes.
            #[allow(
                unsafe_code,
                reason = "loading a component this host precompiled itself"
            )]
            let loaded = unsafe { Component::deserialize_file(engine, &path) };
            match loaded {
                Ok(component) => return Ok((component, Origin::Cache)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "discarding unreadable compiled plugin: {e:#}");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let compiled = engine.precompile_component(wasm)?;
        if let Err(e) = store(dir, &path, &compiled) {
            tracing::warn!(dir = %dir.display(), "cannot cache compiled plugin: {e}");
        }
        #[allow(
            unsafe_code,
            reason = "deserialising bytes this engine produced a moment ago"
        )]
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, Origin::Compiled))
    }
}

/// Writes atomically: a temporary file renamed into place, so a crash never leaves half a file.
fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("plugin"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
