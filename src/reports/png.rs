//! The digest's chart as a PNG: a small RGB canvas, a bar chart drawn on
//! it, and a PNG encoder (signature, IHDR, one zlib IDAT through flate2,
//! IEND, each chunk with its CRC-32).
//!
//! Hand-written because the image is a few filled rectangles: an imaging
//! crate would bring codecs, fonts and dozens of crates for that. The
//! chart carries no text (no font rendering here); the HTML and the
//! Telegram caption around it say what the axes are.

use std::io::Write as _;

/// An RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pixels: Vec<u8>,
}

pub type Rgb = [u8; 3];

const BACKGROUND: Rgb = [255, 255, 255];
const GRID: Rgb = [225, 228, 232];
const AXIS: Rgb = [120, 124, 130];
const BAR: Rgb = [214, 69, 65];

impl Canvas {
    /// A canvas of `width` x `height` (each clamped to 1..=4096) filled
    /// with `fill`.
    pub fn new(width: u32, height: u32, fill: Rgb) -> Canvas {
        let width = width.clamp(1, 4096);
        let height = height.clamp(1, 4096);
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for _ in 0..width as usize * height as usize {
            pixels.extend_from_slice(&fill);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    /// Fills the rectangle `[x0, x1) x [y0, y1)`, clipped to the canvas.
    pub fn fill_rect(&mut self, x0: u32, y0: u32, x1: u32, y1: u32, c: Rgb) {
        let (x1, y1) = (x1.min(self.width), y1.min(self.height));
        for y in y0..y1 {
            for x in x0..x1 {
                let i = (y as usize * self.width as usize + x as usize) * 3;
                self.pixels[i..i + 3].copy_from_slice(&c);
            }
        }
    }

    /// The pixel at (x, y) (for tests).
    pub fn pixel(&self, x: u32, y: u32) -> Rgb {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// The image as a PNG file: 8-bit RGB, no interlace, filter 0 on
    /// every row.
    pub fn to_png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity(self.pixels.len() + self.height as usize);
        let row = self.width as usize * 3;
        for r in self.pixels.chunks(row) {
            raw.push(0);
            raw.extend_from_slice(r);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&raw);
        let idat = z.finish().unwrap_or_default();

        let mut out = Vec::with_capacity(idat.len() + 64);
        out.extend_from_slice(&PNG_SIGNATURE);
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&self.width.to_be_bytes());
        ihdr.extend_from_slice(&self.height.to_be_bytes());
        // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering,
        // no interlace.
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &idat);
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

/// The eight bytes every PNG file starts with.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = Crc32::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finish().to_be_bytes());
}

/// CRC-32 as PNG (and zip, and Ethernet) compute it: polynomial
/// 0xEDB88320 reflected, initial and final XOR 0xFFFFFFFF. (The crc32c
/// crate in the tree is the Castagnoli polynomial, a different checksum.)
struct Crc32(u32);

impl Crc32 {
    fn new() -> Self {
        Crc32(0xffff_ffff)
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            let mut c = (self.0 ^ u32::from(b)) & 0xff;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            self.0 = (self.0 >> 8) ^ c;
        }
    }

    fn finish(&self) -> u32 {
        self.0 ^ 0xffff_ffff
    }
}

/// Chart size in pixels.
pub const CHART_WIDTH: u32 = 640;
pub const CHART_HEIGHT: u32 = 200;
const MARGIN: u32 = 10;
/// Width of the plot area: at most this many bars.
pub const PLOT_WIDTH: u32 = CHART_WIDTH - 2 * MARGIN;

/// How many consecutive values [`bar_chart`] merges into one bar: as few
/// as fit [`PLOT_WIDTH`] bars.
pub fn steps_per_bar(values: usize) -> usize {
    values.div_ceil(PLOT_WIDTH as usize).max(1)
}

/// A bar chart of `values` (one per time step, in order) on a
/// [`CHART_WIDTH`] x [`CHART_HEIGHT`] canvas: [`steps_per_bar`] steps
/// are merged into one bar by their maximum (a short burst stays
/// visible), bar heights are relative to the largest value, with four
/// horizontal grid lines and the axes. All zeros give an empty chart with
/// axes only.
pub fn bar_chart(values: &[f64]) -> Canvas {
    let mut c = Canvas::new(CHART_WIDTH, CHART_HEIGHT, BACKGROUND);
    let plot_w = PLOT_WIDTH;
    let plot_h = CHART_HEIGHT - 2 * MARGIN;
    let bottom = CHART_HEIGHT - MARGIN;
    for i in 1..=4 {
        let y = bottom - plot_h * i / 4;
        c.fill_rect(MARGIN, y, MARGIN + plot_w, y + 1, GRID);
    }
    let max = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    if max > 0.0 && !values.is_empty() {
        let n = values.len();
        let per = steps_per_bar(n);
        let columns = n.div_ceil(per);
        let col_w = plot_w as usize / columns;
        for col in 0..columns {
            let from = col * per;
            let to = (from + per).min(n);
            let v = values[from..to]
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(0.0_f64, f64::max);
            if v <= 0.0 {
                continue;
            }
            let h = ((v / max) * f64::from(plot_h)).round().max(1.0) as u32;
            let x0 = MARGIN + (col * col_w) as u32;
            // One pixel of air between wide bars.
            let x1 = x0 + (col_w as u32).saturating_sub(u32::from(col_w > 2)).max(1);
            c.fill_rect(x0, bottom - h, x1, bottom, BAR);
        }
    }
    c.fill_rect(MARGIN, bottom, MARGIN + plot_w, bottom + 1, AXIS);
    c.fill_rect(MARGIN - 1, MARGIN, MARGIN, bottom + 1, AXIS);
    c
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xcbf4_3926);
        // The IEND chunk's CRC, as every PNG file ends.
        let mut c = Crc32::new();
        c.update(b"IEND");
        assert_eq!(c.finish(), 0xae42_6082);
    }

    #[test]
    fn png_round_trips_through_zlib() {
        let mut canvas = Canvas::new(3, 2, [1, 2, 3]);
        canvas.fill_rect(1, 1, 3, 2, [9, 8, 7]);
        let png = canvas.to_png();
        assert_eq!(&png[..8], &PNG_SIGNATURE);
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 3);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 2);
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&png[41..41 + idat_len])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(
            raw,
            vec![0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 0, 1, 2, 3, 9, 8, 7, 9, 8, 7]
        );
    }

    #[test]
    fn bars_are_relative_to_the_largest_value() {
        assert_eq!(steps_per_bar(10_081), 17);
        assert_eq!(steps_per_bar(241), 1);
        let c = bar_chart(&[0.0, 2.0, 1.0, 0.0]);
        let bottom = CHART_HEIGHT - MARGIN - 1;
        // 4 values over 620 columns: 155 pixels each.
        assert_eq!(c.pixel(MARGIN + 10, bottom), BACKGROUND);
        assert_eq!(c.pixel(MARGIN + 155 + 10, bottom), BAR);
        assert_eq!(
            c.pixel(MARGIN + 155 + 10, MARGIN),
            BAR,
            "the top bar reaches the top"
        );
        assert_eq!(c.pixel(MARGIN + 310 + 10, bottom), BAR);
        assert_ne!(c.pixel(MARGIN + 310 + 10, MARGIN + 50), BAR, "half height");
        assert_eq!(c.pixel(MARGIN + 310 + 10, MARGIN + 100), BAR);
        let empty = bar_chart(&[0.0; 10]);
        assert_eq!(empty.pixel(MARGIN + 100, bottom), BACKGROUND);
    }
}
