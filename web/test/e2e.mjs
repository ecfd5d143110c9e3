// End-to-end test of the browser build in headless Chromium (WebGPU on SwiftShader, the CPU): load the page with
// training started, wait until the app reports steps with a finite loss, click a patch in the attention view and
// check that it became the query, drop an image file on the page and check that it became a sample, take a
// screenshot. Then, in the data view: choose two images with the file picker (they become the dataset), choose a
// folder with one sub-folder per class (it becomes a labelled dataset), save the checkpoint (a download, checked
// to be a safetensors file with beitlab's metadata) and load that file back with the checkpoint picker. Then the
// guided lesson from the address, and the segmentation phase run alone from the address on its view.
// Fails on any console error or uncaught exception.
//
//   node web/test/e2e.mjs URL SCREENSHOT.png
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.argv[2];
const shot = process.argv[3] ?? "target/browser-screenshot.png";
const limitMs = Number(process.env.BEITLAB_E2E_SECONDS ?? 600) * 1000;

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "beitlab-chromium-")), {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: [
    "--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--enable-features=Vulkan",
    "--use-vulkan=swiftshader", "--use-angle=swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-quic",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
const failures = [];
const lines = [];
const t0 = Date.now();
page.on("console", (msg) => {
  const text = msg.text();
  lines.push({ t: Date.now() - t0, text });
  if (msg.type() === "error" || text.includes("beitlab error")) failures.push(`console error: ${text}`);
  if (/beitlab (adapter|progress|attention|error|notice)/.test(text)) console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);
});
page.on("pageerror", (err) => failures.push(`uncaught exception: ${err.message}`));

function fail(why) {
  console.error(`FAIL: ${why}`);
  for (const f of failures) console.error(f);
  process.exit(1);
}

// Resolves with the first console line (after `from`) for which `test` returns a truthy value; with `withinMs`,
// resolves with null when none came in that time (the whole test's limit still fails it).
async function waitFor(what, test, from = 0, withinMs = Infinity) {
  const started = Date.now();
  for (;;) {
    if (failures.length) fail(`${what}: ${failures[0]}`);
    for (let i = from; i < lines.length; i++) {
      const r = test(lines[i].text);
      if (r) return { ...lines[i], r, index: i };
    }
    if (Date.now() - t0 > limitMs) fail(`timed out waiting for ${what}`);
    if (Date.now() - started > withinMs) return null;
    await new Promise((r) => setTimeout(r, 250));
  }
}

function progress(text) {
  const m = text.match(/beitlab progress: (\S+) steps \[([\d, ]+)\] loss (\S+)/);
  if (!m) return null;
  const steps = m[2].split(",").reduce((sum, v) => sum + Number(v), 0);
  return { phase: m[1], steps, loss: Number(m[3]) };
}

await page.goto(url);
const first = await waitFor("a first training step", (t) => {
  const p = progress(t);
  return p && p.steps > 0 && Number.isFinite(p.loss) ? p : null;
});
const some = await waitFor("at least 5 steps with a finite loss", (t) => {
  const p = progress(t);
  return p && p.steps >= 5 && Number.isFinite(p.loss) ? p : null;
}, first.index);
const stepsPerSecond = (some.r.steps - first.r.steps) / Math.max(1e-3, (some.t - first.t) / 1000);

// The attention view: click a patch of the sample image; the app reports the new query token.
const drawn = await waitFor("the attention image", (t) => t.match(/beitlab attention: query (\d+) image (\S+) (\S+) (\S+) (\S+)/));
const [x, y, w, h] = drawn.r.slice(2).map(Number);
await page.mouse.click(x + w * 0.62, y + h * 0.37);
const clicked = await waitFor("the clicked patch to become the query", (t) => {
  const m = t.match(/beitlab attention: query (\d+) image/);
  return m && Number(m[1]) > 0 ? Number(m[1]) : null;
}, drawn.index + 1);
// Drop a 16x16 PNG (a white square on black) on the canvas, as a person dragging a file onto the page would.
const png = "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAAAAAA6mKC9AAAAE0lEQVR4nGNgoBL4DwUDLUAhAADg/z/BeIP4vQAAAABJRU5ErkJggg==";
await page.evaluate((b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "square.png", { type: "image/png" }));
  const canvas = document.getElementById("beitlab");
  for (const type of ["dragenter", "dragover", "drop"]) {
    canvas.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}, png);
await waitFor("the dropped image to become a sample", (t) => t.includes("beitlab notice: square.png is now sample"));
await page.waitForTimeout(1500);
await page.screenshot({ path: shot });
// The training page is done with: closed, so that it does not slow the pages below on a loaded machine.
await page.close();

// The file picker of the data view: two images chosen become the dataset.
const picker = await context.newPage();
picker.on("console", (msg) => {
  const text = msg.text();
  lines.push({ t: Date.now() - t0, text });
  if (/beitlab (files|notice|error)/.test(text)) console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);
  if (msg.type() === "error" || text.includes("beitlab error")) failures.push(`console error: ${text}`);
});
picker.on("pageerror", (err) => failures.push(`uncaught exception: ${err.message}`));
const before = lines.length;
await picker.goto(url.replace(/\?.*$/, "?view=data"));
await waitFor("the data view's buttons", (t) => t.includes("beitlab files: button load"), before);

// Clicks the data view's button `id` where the app last reported it.
async function clickButton(id) {
  const re = new RegExp(`beitlab files: button ${id} (\\S+) (\\S+) (\\S+) (\\S+)`);
  const line = [...lines].reverse().find((l) => re.test(l.text));
  if (!line) fail(`no position for the ${id} button`);
  const [bx, by, bw, bh] = line.text.match(re).slice(1).map(Number);
  await picker.mouse.click(bx + bw / 2, by + bh / 2);
}

// Headless Chromium shows no dialog: choose the files on the picker's <input> as the dialog would. The button may
// move in the frame after a notice (the layout shifts when one appears): when no picker opened after a click, the
// button is clicked again where the app last reported it.
async function choose(id, purpose, files) {
  const from = lines.length;
  const opened = (t) => t.includes(`beitlab files: picker opened for ${purpose}`);
  for (let attempt = 1; ; attempt++) {
    await clickButton(id);
    if (await waitFor(`the ${purpose} picker to open`, opened, from, 15000)) break;
    if (attempt === 4) fail(`the ${purpose} picker did not open after ${attempt} clicks on its button`);
  }
  await picker.setInputFiles("input[type=file]", files);
}

const pngBytes = Buffer.from(png, "base64");
let from = lines.length;
await choose("images", "Images", [
  { name: "a.png", mimeType: "image/png", buffer: pngBytes },
  { name: "b.png", mimeType: "image/png", buffer: pngBytes },
]);
await waitFor("the chosen images to become the dataset", (t) => t.includes("beitlab notice: opened 2 images from your files (no labels"), from);

// A folder with one sub-folder per class becomes a labelled dataset.
const shoes = join(mkdtempSync(join(tmpdir(), "beitlab-folder-")), "shoes");
for (const [cls, n] of [["boot", 3], ["sandal", 2]]) {
  mkdirSync(join(shoes, cls), { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(shoes, cls, `${i}.png`), pngBytes);
}
from = lines.length;
await choose("folder", "Folder", shoes);
await waitFor("the chosen folder to become a labelled dataset", (t) => t.includes("beitlab notice: opened 5 images from folder shoes in 2 classes"), from);

// Save the checkpoint: the browser downloads one safetensors file with the networks' configs in its metadata.
from = lines.length;
const downloading = picker.waitForEvent("download");
await clickButton("save");
const download = await downloading;
const saved = join(mkdtempSync(join(tmpdir(), "beitlab-download-")), download.suggestedFilename());
await download.saveAs(saved);
const bytes = readFileSync(saved);
const headerLength = Number(bytes.readBigUInt64LE(0));
const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8"));
const meta = header.__metadata__ ?? {};
if (meta.beitlab_checkpoint !== "1" || !meta.tokenizer_config || !meta.pretrained_config)
  fail(`the downloaded file has no beitlab checkpoint metadata: ${JSON.stringify(meta).slice(0, 200)}`);
const tensors = Object.keys(header).filter((k) => k !== "__metadata__");
await waitFor("the save to be reported", (t) => t.includes("beitlab notice: saved beitlab-checkpoint.safetensors"), from);

// Load it back with the checkpoint picker.
from = lines.length;
await choose("load", "Checkpoint", saved);
await waitFor("the checkpoint to load", (t) => t.includes("beitlab notice: loaded tokenizer, pretrained BEiT from beitlab-checkpoint.safetensors"), from);
// The guided lesson opened by the address: chapter 3 on the paint view.
const lesson = await context.newPage();
lesson.on("console", (msg) => {
  const text = msg.text();
  lines.push({ t: Date.now() - t0, text });
  if (/beitlab (lesson|error)/.test(text)) console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);
  if (msg.type() === "error" || text.includes("beitlab error")) failures.push(`console error: ${text}`);
});
lesson.on("pageerror", (err) => failures.push(`uncaught exception: ${err.message}`));
from = lines.length;
await lesson.goto(url.replace(/\?.*$/, "?lesson=3"));
await waitFor(
  "the lesson's third chapter",
  (t) => t.includes("beitlab lesson: chapter 3 of 6 (Blockwise vs random masking) on the paint view"),
  from,
);
await lesson.close();
// The segmentation phase run alone from the address, on the segmentation view: its steps train with a finite
// loss and the view shows the model's prediction of a validation canvas.
const seg = await context.newPage();
seg.on("console", (msg) => {
  const text = msg.text();
  lines.push({ t: Date.now() - t0, text });
  if (/beitlab (segment|error)/.test(text)) console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);
  if (msg.type() === "error" || text.includes("beitlab error")) failures.push(`console error: ${text}`);
});
seg.on("pageerror", (err) => failures.push(`uncaught exception: ${err.message}`));
from = lines.length;
await seg.goto(url.replace(/\?.*$/, "?run=segment&view=segment&batch=8"));
const segSteps = await waitFor("3 segmentation steps with a finite loss", (t) => {
  const p = progress(t);
  return p && p.phase === "segment" && p.steps >= 3 && Number.isFinite(p.loss) ? p : null;
}, from);
await waitFor("the segmentation view's prediction", (t) => t.includes("beitlab segment: prediction for image 0"), from);
if (failures.length) fail(failures[0]);
console.log(
  `PASS: first training step after ${(first.t / 1000).toFixed(1)} s (page load to the first report), ` +
    `${some.r.steps} steps with loss ${some.r.loss}, ${stepsPerSecond.toFixed(2)} steps/s, ` +
    `attention query ${clicked.r} after the click, a dropped image became sample 1, two picked images became the ` +
    `dataset, a picked folder became 5 images in 2 classes, the checkpoint downloaded (${download.suggestedFilename()}, ` +
    `${(bytes.length / 1e6).toFixed(2)} MB, ${tensors.length} tensors) and loaded back, ?lesson=3 opened chapter 3 ` +
    `on the paint view, ?run=segment trained ${segSteps.r.steps} segmentation steps (loss ${segSteps.r.loss}) and ` +
    `the segmentation view drew its prediction; screenshot ${shot}`,
);
await context.close();
