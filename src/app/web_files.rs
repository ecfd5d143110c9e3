//! Files dropped on the page or chosen with the file picker (browser): the browser reads files only
//! asynchronously, so each drop or pick is read into a queue that the app drains once all its files have arrived.
//! One image replaces the selected sample; several become the dataset, decoded a few files per frame. The picker's
//! `<input type=file>` is polled each frame, so no JavaScript callback is needed.

use std::cell::RefCell;
use std::rc::Rc;

/// One file read: its name, and its bytes or why they could not be read.
pub type FileRead = (String, Result<Vec<u8>, String>);

/// One drop's files as they arrive: (drop number, files in the drop, name, bytes or why not).
type Arrival = (u64, usize, String, Result<Vec<u8>, String>);

#[derive(Default, Clone)]
pub struct DropQueue {
    arrived: Rc<RefCell<Vec<Arrival>>>,
    drops: u64,
    /// The file picker opened last, until the person has chosen files.
    picker: Option<web_sys::HtmlInputElement>,
}

use eframe::wasm_bindgen::JsCast;
use eframe::web_sys;

impl DropQueue {
    /// Start reading the files of one drop.
    pub fn read(&mut self, files: Vec<egui::DroppedFileHandle>) {
        if files.is_empty() {
            return;
        }
        self.drops += 1;
        let (drop, count) = (self.drops, files.len());
        for f in files {
            let queue = self.arrived.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let name = f.path().display().to_string();
                let bytes = f.bytes_async().await;
                queue.borrow_mut().push((drop, count, name, bytes));
            });
        }
    }

    /// Open the browser's file picker for images (call from a click, which browsers require).
    pub fn open_picker(&mut self) -> Result<(), String> {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or("the page has no document")?;
        let input = document
            .create_element("input")
            .ok()
            .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
            .ok_or("the page cannot create a file picker")?;
        input.set_type("file");
        input.set_multiple(true);
        input.set_accept("image/*");
        input.set_hidden(true);
        if let Some(body) = document.body() {
            let _ = body.append_child(&input);
        }
        input.click();
        log::info!("beitlab files: picker opened");
        self.picker = Some(input);
        Ok(())
    }

    /// Start reading what the picker holds once the person has chosen.
    fn poll_picker(&mut self) {
        let Some(files) = self.picker.as_ref().and_then(|p| p.files()) else {
            return;
        };
        if files.length() == 0 {
            return;
        }
        self.picker = None;
        self.drops += 1;
        let (drop, count) = (self.drops, files.length() as usize);
        for i in 0..files.length() {
            let Some(file) = files.get(i) else { continue };
            let queue = self.arrived.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let read = wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await;
                let bytes = read
                    .map(|buf| js_sys::Uint8Array::new(&buf).to_vec())
                    .map_err(|e| format!("{e:?}"));
                queue.borrow_mut().push((drop, count, file.name(), bytes));
            });
        }
    }

    /// The drops whose files have all arrived, each as (name, bytes or why not) in arrival order.
    pub fn complete(&mut self) -> Vec<Vec<FileRead>> {
        self.poll_picker();
        let mut arrived = self.arrived.borrow_mut();
        let mut done: Vec<u64> = Vec::new();
        for (drop, count, _, _) in arrived.iter() {
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
                mine.into_iter().map(|(_, _, n, b)| (n, b)).collect()
            })
            .collect()
    }
}
