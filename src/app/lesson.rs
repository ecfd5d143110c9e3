//! The guided lesson: six short chapters that walk through BEiT on the live model, each a few sentences, the view
//! it is about (opened with it) and one thing to try that changes what the learner sees. Opened from the top bar,
//! natively with `beitlab app --lesson N`, in the page with `?lesson=N`.

use super::settings::Settings;
use super::View;
use crate::rng::Rng;

/// One chapter.
pub struct Chapter {
    pub title: &'static str,
    pub text: &'static str,
    pub view: View,
    pub try_this: &'static str,
}

/// The chapters, in order.
pub const CHAPTERS: [Chapter; 6] = [
    Chapter {
        title: "Patches and visual tokens",
        text: "BEiT cuts each image into a grid of patches, like words in a sentence. A visual tokenizer turns every \
               patch into one of a few hundred discrete codes, its visual token; decoding the tokens back gives the \
               blurry but recognisable reconstruction shown here. The tokens are what BEiT will learn to predict.",
        view: View::Tokens,
        try_this: "Press Start, then hover a patch: its token id and BEiT's five most likely guesses appear.",
    },
    Chapter {
        title: "The tokenizer learns its codebook",
        text: "The tokenizer is trained first, on its own: an encoder maps each patch to a vector, the nearest of the \
               codebook's vectors becomes its token, and a decoder must rebuild the patch from the token alone. \
               Codes nobody uses are restarted at a patch that needed one. Each tile here is one code decoded.",
        view: View::Codebook,
        try_this: "Compare the tiles at the start of the tokenizer phase with those at its end, and the line above \
                   them: how many codes are in use and their perplexity.",
    },
    Chapter {
        title: "Blockwise vs random masking",
        text: "During pretraining about 40% of the patches are hidden. BEiT hides them in blocks: a hidden patch's \
               neighbours are often hidden too, so it cannot be guessed by copying a neighbour. The map below \
               shows how often each grid position is hidden under the current masking.",
        view: View::Paint,
        try_this: "Switch the masking mode between blockwise and random in the settings (left): the blocks in the \
                   samples and the frequency map change at once; paint your own mask on the image. Then see \
                   what it does to learning: after pretraining, Keep this model in Compare runs, switch to random \
                   masking and run Pretrain again.",
    },
    Chapter {
        title: "Predicting the hidden tokens",
        text: "Pretraining shows BEiT the image with the hidden patches replaced by a learned mask embedding, and \
               asks for the visual token of every hidden patch. Decoding its guesses shows what it believes is \
               under the mask: green patches are exact, red ones wrong; top 5 and the pixel error show near misses.",
        view: View::Mim,
        try_this: "Pause pretraining early and late and compare the guesses: first one grey average everywhere, \
                   later guesses that differ from patch to patch, some exactly right. Reshuffle for other images.",
    },
    Chapter {
        title: "What attention learned",
        text: "Every block lets each token look at all the others; the weights of that look are the attention map. \
               Pick a query patch to see where it looks, per head and per layer, and compare the maps of a fresh \
               model with those after pretraining.",
        view: View::Attention,
        try_this: "Click a patch on the image to make it the query, then step through the layers and heads.",
    },
    Chapter {
        title: "Fine-tuning: pretrained vs from scratch",
        text: "The pretrained encoder gets a classification head and is trained on the labels. The curves compare it \
               with the same network trained from a random start: pretraining should make the loss fall sooner. \
               At this tiny size the gap is small, and `beitlab experiment --seeds 3` measures whether it is real.",
        view: View::Curves,
        try_this: "Let the fine-tuning phase finish, then compare the two fine-tuning curves and the accuracy at the end.",
    },
];

/// Where the learner is in the lesson.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lesson {
    /// 0-based chapter.
    pub chapter: usize,
}

impl Lesson {
    /// Chapter `n` counted from 1 (as in `--lesson N` and `?lesson=N`); out of range is an error listing them.
    pub fn open(n: usize) -> Result<Self, String> {
        if (1..=CHAPTERS.len()).contains(&n) {
            Ok(Self { chapter: n - 1 })
        } else {
            Err(format!(
                "the lesson has chapters 1 to {}: {}",
                CHAPTERS.len(),
                CHAPTERS
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} {}", i + 1, c.title))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    pub fn current(&self) -> &'static Chapter {
        &CHAPTERS[self.chapter.min(CHAPTERS.len() - 1)]
    }
}

/// Parse `--lesson N` (1-based).
pub fn parse_chapter(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a chapter number"))?;
    Lesson::open(n).map(|_| n)
}

/// How often each of the `grid` x `grid` positions is masked under `settings`, over `draws` masks (0..1).
pub fn masking_frequency(grid: u32, settings: &Settings, draws: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let n = (grid * grid) as usize;
    let mut counts = vec![0u32; n];
    for _ in 0..draws {
        let mask = super::phases::make_mask(grid, settings, &mut rng);
        for (c, m) in counts.iter_mut().zip(mask) {
            *c += m as u32;
        }
    }
    counts
        .iter()
        .map(|&c| c as f32 / draws.max(1) as f32)
        .collect()
}
