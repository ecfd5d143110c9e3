//! BEiT's blockwise masking, exactly as the official generator behaves, and the uniform random masking of the
//! paper's ablation. A mask is `grid_h · grid_w` bytes in row-major patch order, 1 = masked.
//!
//! The generator adds blocks until the budget is met or a block adds nothing: each block is up to 10 attempts of
//! a target area s ~ U(min_patches, remaining budget), an aspect ratio r log-uniform in [min_aspect, max_aspect],
//! h = round(√(s·r)), w = round(√(s/r)) (Python's round: half to even), accepted only if it fits the grid, adds at
//! least one new patch and no more than the remaining budget. So a mask never exceeds the budget and can end below it.

use crate::rng::Rng;

/// Parameters of the blockwise generator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockMasking {
    pub grid_h: u32,
    pub grid_w: u32,
    /// The budget K (75 of 196 at 224/16).
    pub num_masking_patches: u32,
    /// Smallest target area of a block (16 at 224/16).
    pub min_num_patches: u32,
    /// Largest target area of one block (the official default: the budget).
    pub max_num_patches: u32,
    pub min_aspect: f64,
    pub max_aspect: f64,
}

/// One accepted block: its rectangle (top, left, height, width) and the patches it newly masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub top: u32,
    pub left: u32,
    pub height: u32,
    pub width: u32,
    pub added: u32,
}

impl BlockMasking {
    /// BEiT's settings scaled to a grid: budget 40% of the patches, minimum block N·16/196 (at least 1),
    /// aspect ratios in [0.3, 1/0.3]. At 14 x 14 this is the paper's 75 / 16 up to rounding of the budget (78);
    /// use [`BlockMasking::beit_224`] for the paper's exact numbers.
    pub fn scaled(grid: u32) -> Self {
        let n = (grid * grid) as f64;
        let k = (0.4 * n).round() as u32;
        Self::new(
            grid,
            grid,
            k,
            ((16.0 * n / 196.0).round() as u32).max(1),
            0.3,
            None,
        )
    }

    /// The paper's 224 / 16 setting: 14 x 14 grid, 75 patches, blocks of at least 16.
    pub fn beit_224() -> Self {
        Self::new(14, 14, 75, 16, 0.3, None)
    }

    /// `min_aspect` and its inverse bound the aspect ratio (the official `max_aspect` defaults to 1 / min_aspect).
    pub fn new(
        grid_h: u32,
        grid_w: u32,
        num_masking_patches: u32,
        min_num_patches: u32,
        min_aspect: f64,
        max_aspect: Option<f64>,
    ) -> Self {
        Self {
            grid_h,
            grid_w,
            num_masking_patches,
            min_num_patches,
            max_num_patches: num_masking_patches,
            min_aspect,
            max_aspect: max_aspect.unwrap_or(1.0 / min_aspect),
        }
    }

    /// Check the parameters, one sentence for the first problem.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.grid_h * self.grid_w;
        if n == 0 {
            return Err("the mask grid must have at least one patch".into());
        }
        if self.num_masking_patches > n {
            return Err(format!(
                "cannot mask {} patches of a {} x {} grid",
                self.num_masking_patches, self.grid_h, self.grid_w
            ));
        }
        if self.min_num_patches == 0 {
            return Err("min_num_patches must be at least 1".into());
        }
        if !(self.min_aspect > 0.0 && self.max_aspect >= self.min_aspect) {
            return Err(format!(
                "aspect range [{}, {}] is empty or not positive",
                self.min_aspect, self.max_aspect
            ));
        }
        Ok(())
    }

    /// One mask; also returns the blocks it was made of.
    pub fn generate_with_blocks(&self, rng: &mut Rng) -> (Vec<u8>, Vec<Block>) {
        let mut mask = vec![0u8; (self.grid_h * self.grid_w) as usize];
        let mut blocks = Vec::new();
        let mut count = 0;
        while count < self.num_masking_patches {
            let budget = (self.num_masking_patches - count).min(self.max_num_patches);
            match self.one_block(&mut mask, budget, rng) {
                Some(b) => {
                    count += b.added;
                    blocks.push(b);
                }
                None => break,
            }
        }
        (mask, blocks)
    }

    pub fn generate(&self, rng: &mut Rng) -> Vec<u8> {
        self.generate_with_blocks(rng).0
    }

    fn one_block(&self, mask: &mut [u8], budget: u32, rng: &mut Rng) -> Option<Block> {
        let (lo, hi) = (self.min_aspect.ln(), self.max_aspect.ln());
        for _ in 0..10 {
            // Python's random.uniform(a, b) = a + (b - a)·U, also when b < a.
            let target = rng.range(self.min_num_patches as f64, budget as f64);
            let aspect = rng.range(lo, hi).exp();
            let h = (target * aspect).sqrt().round_ties_even() as u32;
            let w = (target / aspect).sqrt().round_ties_even() as u32;
            if w < self.grid_w && h < self.grid_h {
                let top = (rng.uniform() * (self.grid_h - h + 1) as f64) as u32;
                let left = (rng.uniform() * (self.grid_w - w + 1) as f64) as u32;
                let mut already = 0;
                for i in top..top + h {
                    for j in left..left + w {
                        already += mask[(i * self.grid_w + j) as usize] as u32;
                    }
                }
                let new = h * w - already;
                if new > 0 && new <= budget {
                    for i in top..top + h {
                        for j in left..left + w {
                            mask[(i * self.grid_w + j) as usize] = 1;
                        }
                    }
                    return Some(Block {
                        top,
                        left,
                        height: h,
                        width: w,
                        added: new,
                    });
                }
            }
        }
        None
    }
}

/// Uniform random masking of exactly `count` of `n` patches (the paper's ablation).
pub fn random_mask(n: u32, count: u32, rng: &mut Rng) -> Vec<u8> {
    let mut order: Vec<u32> = (0..n).collect();
    for i in (1..n as usize).rev() {
        let j = (rng.uniform() * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    let mut mask = vec![0u8; n as usize];
    for &i in order.iter().take(count.min(n) as usize) {
        mask[i as usize] = 1;
    }
    mask
}
