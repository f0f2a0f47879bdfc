//! Pure work on many items spread over threads, results kept in input order.
//!
//! Checking signatures is the costliest pure step of a node (a roster's operations, a batch of signed
//! items), so it runs on every core. [`map_in_order`] is the one place that splits the items, runs the
//! parts on scoped threads, and puts the results back in input order, so that a part whose thread
//! panicked cannot silently drop its items.

/// `f` of every item, in input order, spread over up to `threads` scoped threads in contiguous parts
/// (on the calling thread alone when `threads` is under 2 or there are fewer than `min_items` items).
/// A part whose thread panicked gives `fallback` of each of its items instead, on the calling thread: every
/// item has exactly one result.
pub fn map_in_order<T, R, F, G>(
    items: &[T],
    threads: usize,
    min_items: usize,
    f: F,
    fallback: G,
) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
    G: Fn(&T) -> R,
{
    let threads = threads.clamp(1, 64);
    if threads < 2 || items.len() < min_items.max(2) {
        return items.iter().map(&f).collect();
    }
    let part = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(part)
            .map(|chunk| {
                let worker = scope.spawn(move || chunk.iter().map(f).collect::<Vec<R>>());
                (chunk, worker)
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (chunk, worker) in workers {
            match worker.join() {
                Ok(results) => out.extend(results),
                Err(_) => out.extend(chunk.iter().map(&fallback)),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_input_order_whatever_the_threads() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [0, 1, 2, 3, 7, 64, 1000] {
            let out = map_in_order(&items, threads, 10, |x| x * 2, |_| u32::MAX);
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_part_whose_thread_panicked_gives_the_fallback_for_each_of_its_items() {
        let items: Vec<u32> = (0..100).collect();
        // Item 30 panics: its part (25..50 with 4 threads) gives the fallback, every other item its result.
        let out = map_in_order(
            &items,
            4,
            10,
            |x| {
                assert_ne!(*x, 30, "a fault on one item");
                Some(*x)
            },
            |_| None,
        );
        assert_eq!(out.len(), 100);
        for (i, r) in out.iter().enumerate() {
            if (25..50).contains(&i) {
                assert_eq!(*r, None, "item {i}");
            } else {
                assert_eq!(*r, Some(i as u32), "item {i}");
            }
        }
    }
}
