//! Files in the browser: dropped on the page or chosen with a file picker, and checkpoints handed to the visitor
//! as downloads. The browser reads files only asynchronously, so each drop or pick is read into a queue that the
//! app drains once all its files have arrived. A picker's `<input type=file>` is polled each frame, so no
//! JavaScript callback is needed.

use std::cell::RefCell;
use std::rc::Rc;

use eframe::wasm_bindgen::JsCast;

/// One file read: its name (a folder pick's files: the path inside the folder), and its bytes or why not.
pub type FileRead = (String, Result<Vec<u8>, String>);

/// What a set of files is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// One image replaces the selected sample; several become the (unlabelled) dataset.
    Images,
    /// A folder: its sub-folders are the classes when every image sits one level down.
    Folder,
    /// Checkpoint files (a one-file checkpoint, or config.json + model.safetensors).
    Checkpoint,
}

/// A drop or pick whose files have all arrived.
pub struct Arrived {
    pub purpose: Purpose,
    pub files: Vec<FileRead>,
}

/// One drop's files as they arrive: (drop number, files in the drop, purpose, name, bytes or why not).
type Arrival = (u64, usize, Purpose, String, Result<Vec<u8>, String>);

#[derive(Default, Clone)]
pub struct DropQueue {
    arrived: Rc<RefCell<Vec<Arrival>>>,
    drops: u64,
    /// The file picker opened last, until the person has chosen files.
    picker: Option<(web_sys::HtmlInputElement, Purpose)>,
    /// The object URL of the last download, released at the next one.
    last_download: Option<String>,
}

/// The page's document and a new element of it with `tag`.
fn element<T: JsCast>(tag: &str) -> Option<(web_sys::Document, T)> {
    let document = web_sys::window().and_then(|w| w.document())?;
    let e = document.create_element(tag).ok()?.dyn_into::<T>().ok()?;
    Some((document, e))
}

/// Checkpoint files are told from images by their names.
fn is_checkpoint_file(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".safetensors") || n.ends_with(".json")
}

impl DropQueue {
    /// Start reading the files of one drop (checkpoint files when any has a checkpoint's extension).
    pub fn read(&mut self, files: Vec<egui::DroppedFileHandle>) {
        if files.is_empty() {
            return;
        }
        let purpose = if files
            .iter()
            .any(|f| is_checkpoint_file(&f.path().display().to_string()))
        {
            Purpose::Checkpoint
        } else {
            Purpose::Images
        };
        self.drops += 1;
        let (drop, count) = (self.drops, files.len());
        for f in files {
            let queue = self.arrived.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let name = f.path().display().to_string();
                let bytes = f.bytes_async().await;
                queue.borrow_mut().push((drop, count, purpose, name, bytes));
            });
        }
    }

    /// Open the browser's file picker (call from a click, which browsers require).
    pub fn open_picker(&mut self, purpose: Purpose) -> Result<(), String> {
        let (document, input) = element::<web_sys::HtmlInputElement>("input")
            .ok_or("the page cannot create a file picker")?;
        input.set_type("file");
        input.set_multiple(true);
        match purpose {
            Purpose::Images => input.set_accept("image/*"),
            Purpose::Folder => input.set_webkitdirectory(true),
            Purpose::Checkpoint => input.set_accept(".safetensors,.json"),
        }
        input.set_hidden(true);
        // The last picker in the page is the one a test (or a person) answers.
        if let Some((old, _)) = self.picker.take() {
            old.remove();
        }
        if let Some(body) = document.body() {
            let _ = body.append_child(&input);
        }
        input.click();
        log::info!("beitlab files: picker opened for {purpose:?}");
        self.picker = Some((input, purpose));
        Ok(())
    }

    /// Start reading what the picker holds once the person has chosen.
    fn poll_picker(&mut self) {
        let Some((input, purpose)) = self.picker.clone() else {
            return;
        };
        let Some(files) = input.files().filter(|f| f.length() > 0) else {
            return;
        };
        input.remove();
        self.picker = None;
        self.drops += 1;
        let (drop, count) = (self.drops, files.length() as usize);
        for i in 0..files.length() {
            let Some(file) = files.get(i) else { continue };
            // A folder pick names each file by its path inside the folder.
            let relative = js_sys::Reflect::get(&file, &"webkitRelativePath".into())
                .ok()
                .and_then(|v| v.as_string())
                .filter(|p| !p.is_empty());
            let name = relative.unwrap_or_else(|| file.name());
            let queue = self.arrived.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let read = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await;
                let bytes = read
                    .map(|buf| js_sys::Uint8Array::new(&buf).to_vec())
                    .map_err(|e| format!("{e:?}"));
                queue.borrow_mut().push((drop, count, purpose, name, bytes));
            });
        }
    }

    /// The drops and picks whose files have all arrived, each with its files in arrival order.
    pub fn complete(&mut self) -> Vec<Arrived> {
        self.poll_picker();
        let mut arrived = self.arrived.borrow_mut();
        let mut done: Vec<u64> = Vec::new();
        for (drop, count, ..) in arrived.iter() {
            if !done.contains(drop) && arrived.iter().filter(|a| a.0 == *drop).count() == *count {
                done.push(*drop);
            }
        }
        done.iter()
            .map(|d| {
                let (mine, rest): (Vec<Arrival>, Vec<Arrival>) = std::mem::take(&mut *arrived)
                    .into_iter()
                    .partition(|a| a.0 == *d);
                *arrived = rest;
                Arrived {
                    purpose: mine.first().map_or(Purpose::Images, |a| a.2),
                    files: mine.into_iter().map(|(_, _, _, n, b)| (n, b)).collect(),
                }
            })
            .collect()
    }

    /// Hand `bytes` to the visitor as a download named `name` (the browser's own download bar or folder).
    pub fn download(&mut self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let why = |what: &str| format!("the browser refused the download ({what})");
        let array = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
        let options = web_sys::BlobPropertyBag::new();
        options.set_type("application/octet-stream");
        let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&array, &options)
            .map_err(|_| why("blob"))?;
        let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| why("url"))?;
        let (_, anchor) = element::<web_sys::HtmlAnchorElement>("a").ok_or_else(|| why("link"))?;
        anchor.set_href(&url);
        anchor.set_download(name);
        anchor.click();
        if let Some(old) = self.last_download.replace(url) {
            let _ = web_sys::Url::revoke_object_url(&old);
        }
        log::info!("beitlab files: saved {name} {} bytes", bytes.len());
        Ok(())
    }
}
