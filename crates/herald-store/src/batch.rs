//! Group commit for the hot write path: concurrent callers hand their items to one writer
//! task, which takes everything queued (up to a limit) and writes it in one transaction.
//! Nobody waits for a batch to fill — a lone item is written at once — so under light load
//! this costs nothing, and under heavy load one `BEGIN … COMMIT` (and one fsync) serves many
//! requests. Convoy's lesson: batch your writes. One writer per process, on both stores: on
//! Postgres, four concurrent writers were measured to make smaller batches, more commits and
//! a worse tail; replicas still commit side by side.

use std::future::Future;
use tokio::sync::{mpsc, oneshot};

type Job<T, R> = (T, oneshot::Sender<R>);

/// Hands items to the batch-writing task and returns each item's own result.
pub(crate) struct Batcher<T, R> {
    queue: mpsc::Sender<Job<T, R>>,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the task that calls `write` with up to `max_batch` queued items at a time;
    /// `write` returns one result per item, in order. `None` outside an async runtime.
    pub(crate) fn spawn<F, Fut>(max_batch: usize, write: F) -> Option<Self>
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<R>> + Send,
    {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, mut jobs) = mpsc::channel::<Job<T, R>>(max_batch * 4);
        // Ends when the batcher (the only sender) is dropped.
        runtime.spawn(async move {
            while let Some(first) = jobs.recv().await {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
                let results = write(items).await;
                for (reply, result) in replies.into_iter().zip(results) {
                    // The caller may have given up (its request was cancelled).
                    let _ = reply.send(result);
                }
            }
        });
        Some(Self { queue })
    }

    /// Queues `item` and waits for its result; `None` if the writer is gone.
    pub(crate) async fn submit(&self, item: T) -> Option<R> {
        let (reply, result) = oneshot::channel();
        self.queue.send((item, reply)).await.ok()?;
        result.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_item_gets_its_own_result_and_queued_items_share_a_batch() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Batcher::spawn(64, move |items: Vec<u32>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(items.len());
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                items.into_iter().map(|i| i * 2).collect()
            }
        })
        .unwrap();
        let batcher = Arc::new(batcher);
        let results = futures_util::future::join_all((0..50u32).map(|i| {
            let batcher = batcher.clone();
            async move { batcher.submit(i).await }
        }))
        .await;
        assert_eq!(results, (0..50u32).map(|i| Some(i * 2)).collect::<Vec<_>>());
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 50);
        assert!(sizes.len() < 50, "queued items were batched: {sizes:?}");
    }
}
