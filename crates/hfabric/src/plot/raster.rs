//! SVG to PNG in-process, with resvg (pure Rust: no external converter on PATH). Text uses
//! the system's fonts (fontconfig directories); without any, the shapes still render.

use resvg::{tiny_skia, usvg};
use std::path::Path;
use std::sync::OnceLock;

/// The system fonts, loaded once per process.
fn fonts() -> std::sync::Arc<usvg::fontdb::Database> {
    static DB: OnceLock<std::sync::Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_system_fonts();
        std::sync::Arc::new(db)
    })
    .clone()
}

/// Renders `svg` at `scale` (2.0: twice the SVG's pixel size) and returns PNG bytes.
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>, String> {
    let opt = usvg::Options {
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("bad SVG: {e}"))?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or("empty SVG")?;
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| format!("cannot allocate a {}x{} image", size.width(), size.height()))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| format!("cannot encode the PNG: {e}"))
}

/// Writes `svg` as a PNG file at twice its pixel size.
pub fn write_png(path: &Path, svg: &str) -> Result<(), String> {
    let png = svg_to_png(svg, 2.0)?;
    std::fs::write(path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_png_comes_out_with_its_signature_and_size() {
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="30" height="20"><rect width="10" height="10" fill="#f00"/></svg>"##;
        let png = super::svg_to_png(svg, 2.0).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, after the 8-byte signature and 8 bytes of chunk head.
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 60);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 40);
        assert!(super::svg_to_png("not svg", 1.0).is_err());
    }
}
