//! A "broker" that accepts connections and never answers, and a ticking task
//! that measures how long the runtime left it waiting.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use twitch::warden::KafkaCluster;

/// Listens on a port the OS picked, accepts every connection and never
/// answers: librdkafka connects and waits, so records stay in flight until
/// `message.timeout.ms`.
pub struct BlackHole {
    pub addr: String,
}

impl BlackHole {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let mut open: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming().flatten() {
                open.push(stream);
            }
        });
        BlackHole { addr }
    }

    /// A cluster whose only broker is this black hole, with these settings.
    pub fn cluster(&self, settings: &[(&str, &str)]) -> KafkaCluster {
        let mut builder = KafkaCluster::builder(self.addr.clone());
        for (k, v) in settings {
            builder = builder.set(*k, *v);
        }
        builder.build().unwrap()
    }
}

/// A task that ticks every 10 ms and records the longest gap between two
/// ticks, from when it started until `stop`.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Duration, u32)>,
}

impl Ticker {
    pub async fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut last = Instant::now();
            let (mut max_gap, mut ticks) = (Duration::ZERO, 0);
            while !flag.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let now = Instant::now();
                max_gap = max_gap.max(now - last);
                last = now;
                ticks += 1;
            }
            (max_gap, ticks)
        });
        // Let it tick a few times first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ticker { stop, task }
    }

    /// Stops the ticker: the longest gap between two ticks, and the ticks.
    pub async fn stop(self) -> (Duration, u32) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}
