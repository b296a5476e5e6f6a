//! Plain-text tables: a header row and columns padded to their widest cell.

/// Renders `rows` under `headers`, two spaces between columns, the last column unpadded
/// (it is often free text). Rows shorter than the header get empty cells.
pub fn render(headers: &[String], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(headers).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (i, width) in widths.iter().enumerate() {
            let cell = row.get(i).map_or("", String::as_str);
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn columns_are_aligned_to_the_widest_cell() {
        let text = render(
            &strings(&["TIME", "ACTOR", "DETAIL"]),
            &[
                strings(&["2026-12-07T16:05:03Z", "admin-api", "a = 1"]),
                strings(&["2026-12-07T16:05:04Z", "web", "b"]),
            ],
        );
        assert_eq!(
            text,
            "TIME                  ACTOR      DETAIL\n\
             2026-12-07T16:05:03Z  admin-api  a = 1\n\
             2026-12-07T16:05:04Z  web        b\n"
        );
    }

    #[test]
    fn short_rows_and_wide_characters_keep_alignment() {
        let text = render(
            &strings(&["A", "B", "C"]),
            &[strings(&["é", "x"]), strings(&["long", "y", "z"])],
        );
        assert_eq!(text, "A     B  C\né     x\nlong  y  z\n");
    }
}
