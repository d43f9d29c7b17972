//! Transparent huge pages for the heap.
//!
//! Ingestion touches every active series' head entry, scrape-cache slot
//! and cached series text once per scrape interval: tens of megabytes, each
//! piece long gone from the CPU caches. With 4 KiB pages nearly every one
//! of those touches is also a TLB miss, and in a virtual machine (nested
//! paging) a TLB miss is a two-level page walk of its own. Backing the heap
//! with 2 MiB pages halved ingestion CPU per sample on the bench machine.
//!
//! Distributions ship THP in `madvise` mode, so a process has to ask, per
//! mapping. The allocator (glibc malloc) owns the mappings, so this module
//! finds them in `/proc/self/maps`: the `[heap]` that the main arena grows
//! with brk, and the per-thread arenas, each a 64 MiB-aligned reservation
//! whose front is read-write and whose rest stays `PROT_NONE` until the
//! arena grows into it. The advice covers the whole reservation, so an
//! arena's growth keeps it; brk growth does not (it makes a new mapping),
//! nor do arenas created later, so the app calls [`advise_heap`] again now
//! and then. Where THP is `never` (or missing) the advice does nothing, so
//! the operator keeps the last word through
//! `/sys/kernel/mm/transparent_hugepage/enabled`.

/// glibc's arena reservation on 64-bit targets (`HEAP_MAX_SIZE`).
const ARENA_RESERVATION: u64 = 64 << 20;

/// The heap mappings to advise, as `[start, end)` address ranges, from the
/// text of `/proc/self/maps`.
pub(crate) fn heap_regions(maps: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    // End of the reservation of the arena being walked (0: none), and the
    // end of the previous mapping, to follow an arena's contiguous parts.
    let mut arena_end = 0u64;
    let mut prev_end = 0u64;
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(_offset), Some(_dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let path = f.next();
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let anonymous = inode == "0" && path.is_none();
        if path == Some("[heap]") && perms == "rw-p" {
            out.push((start, end));
            arena_end = 0;
        } else if anonymous && perms == "rw-p" && start % ARENA_RESERVATION == 0 {
            arena_end = start.saturating_add(ARENA_RESERVATION);
            out.push((start, end.min(arena_end)));
        } else if anonymous
            && (perms == "rw-p" || perms == "---p")
            && start == prev_end
            && start < arena_end
        {
            out.push((start, end.min(arena_end)));
        } else {
            arena_end = 0;
        }
        prev_end = end;
    }
    out
}

/// Asks the kernel to back the allocator's heap with transparent huge
/// pages. Returns the bytes advised. Harmless to repeat; a no-op off Linux.
pub(crate) fn advise_heap() -> std::io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut advised = 0;
        for (start, end) in heap_regions(&maps) {
            let len = (end - start) as usize;
            // SAFETY: MADV_HUGEPAGE only sets a hint on the mappings in
            // the range; it changes no memory contents and no protection.
            // Should a region have been unmapped since the maps were read,
            // the call fails or hints a mapping that took its place, which
            // is equally harmless.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
            if rc == 0 {
                advised += len as u64;
            }
        }
        Ok(advised)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d4c2a00000-55d4c2b00000 r-xp 00000000 08:01 1234    /usr/bin/watchpost
55d4c3a00000-55d4c4e00000 rw-p 00000000 00:00 0       [heap]
7f2a04000000-7f2a05a21000 rw-p 00000000 00:00 0
7f2a05a21000-7f2a08000000 ---p 00000000 00:00 0
7f2a0c000000-7f2a0c021000 rw-p 00000000 00:00 0
7f2a0c021000-7f2a10000000 ---p 00000000 00:00 0
7f2a10000000-7f2a10001000 ---p 00000000 00:00 0
7f2a10001000-7f2a10801000 rw-p 00000000 00:00 0
7f2a12345000-7f2a12400000 rw-p 00000000 00:00 0
7f2a14000000-7f2a14100000 rw-s 00000000 00:05 99      /dev/zero (deleted)
7f2a18000000-7f2a18200000 r--p 00000000 08:01 77      /data/blocks/1/chunks
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0       [stack]
";

    #[test]
    fn finds_the_heap_and_whole_arena_reservations_only() {
        assert_eq!(
            heap_regions(MAPS),
            vec![
                (0x55d4c3a00000, 0x55d4c4e00000),
                (0x7f2a04000000, 0x7f2a05a21000),
                (0x7f2a05a21000, 0x7f2a08000000),
                (0x7f2a0c000000, 0x7f2a0c021000),
                (0x7f2a0c021000, 0x7f2a10000000),
            ],
            "a thread stack (guard page, then rw-p), an unaligned anonymous \
             mapping, shared and file mappings and the main stack are left alone"
        );
    }

    #[test]
    fn an_arena_part_is_clipped_to_its_reservation() {
        let maps = "\
7f2a04000000-7f2a05000000 rw-p 00000000 00:00 0
7f2a05000000-7f2a09000000 ---p 00000000 00:00 0
";
        assert_eq!(
            heap_regions(maps),
            vec![
                (0x7f2a04000000, 0x7f2a05000000),
                (0x7f2a05000000, 0x7f2a08000000)
            ]
        );
    }

    #[test]
    fn ignores_lines_it_cannot_read() {
        assert!(heap_regions("garbage\n\nzz-yy rw-p 0 0 0\n").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_real_heap_gets_the_hint() {
        let keep = vec![1u8; 4 << 20];
        let advised = advise_heap().unwrap();
        assert!(advised > 0, "no heap mapping found to advise");
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let (start, _) = heap_regions(&maps)[0];
        // The kernel lists the mapping's flags in smaps; `hg` is the hint.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // Anchored at a line start, so no other address ending in the
        // same digits can match.
        let block = format!("\n{smaps}")
            .split_once(&format!("\n{start:x}-"))
            .map(|(_, rest)| rest.to_string())
            .expect("the advised mapping is listed in smaps");
        let flags = block
            .lines()
            .find(|l| l.starts_with("VmFlags:"))
            .expect("smaps lists VmFlags");
        assert!(flags.split_whitespace().any(|f| f == "hg"), "{flags}");
        drop(keep);
    }
}
