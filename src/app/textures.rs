//! egui textures made from network outputs, uploaded once per result generation and reused every frame.

use std::collections::HashMap;

use egui::{ColorImage, TextureHandle, TextureOptions};

#[derive(Default)]
pub struct Textures {
    cache: HashMap<String, (u64, TextureHandle)>,
}

impl Textures {
    /// The texture called `key` for result `generation`, made with `make` when missing or older.
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        generation: u64,
        make: impl FnOnce() -> ColorImage,
    ) -> egui::TextureId {
        match self.cache.get(key) {
            Some((g, t)) if *g == generation => t.id(),
            _ => {
                let t = ctx.load_texture(key, make(), TextureOptions::NEAREST);
                let id = t.id();
                self.cache.insert(key.to_string(), (generation, t));
                id
            }
        }
    }
}
