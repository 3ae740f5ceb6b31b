//! The smallest deployment package Lambda accepts: a zip archive (stored, not compressed) holding one file, written
//! here rather than pulling in a zip crate for one 100-byte archive (PKWARE APPNOTE.TXT, sections 4.3.7, 4.3.12
//! and 4.3.16: local file header, central directory header, end of central directory record).

/// A zip archive with one file `name` holding `content`.
pub(crate) fn single_file(name: &str, content: &[u8]) -> Vec<u8> {
    let crc = crc32(content);
    let (name, size) = (name.as_bytes(), content.len() as u32);
    let mut out = Vec::new();
    // Local file header: version 1.0, no flags, method 0 (stored), DOS time and date 1980-01-01 00:00.
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    out.extend_from_slice(&[10, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(content);
    let central = out.len() as u32;
    // Central directory header, made by version 1.0 (MS-DOS), the same fields, offset 0 of its local header.
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    out.extend_from_slice(&[10, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    // Extra and comment lengths, disk number, internal and external attributes, local header offset.
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(name);
    let central_size = out.len() as u32 - central;
    // End of central directory: one entry on disk 0.
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bit by bit: the input is a few dozen bytes.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        // The check value of CRC-32/ISO-HDLC for "123456789".
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn the_archive_is_read_back_by_python_s_zipfile() {
        let zip = single_file("index.py", b"def handler(event, context):\n    return 1\n");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.zip");
        std::fs::write(&path, &zip).unwrap();
        let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        let out = std::process::Command::new(python)
            .args([
                "-c",
                "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; \
                          print(z.namelist(), z.read('index.py').decode())",
            ])
            .arg(&path)
            .output()
            .expect("the emulator's venv python (scripts/setup-emulator.sh)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("['index.py'] def handler(event, context):"), "{text}");
    }
}
