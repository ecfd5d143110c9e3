//! Files dropped on the page (browser): the browser reads files only asynchronously, so each drop is read into a
//! queue that the app drains once every file of the drop has arrived. One image replaces the selected sample;
//! several become the dataset, decoded a few files per frame.

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
}

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

    /// The drops whose files have all arrived, each as (name, bytes or why not) in arrival order.
    pub fn complete(&mut self) -> Vec<Vec<FileRead>> {
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
