//! Containing sled's panics on a damaged store.
//!
//! sled 0.34 panics on some damaged files instead of returning an error (flipped bytes or a
//! cut-off log: `tried to serialize Uninitialized`). Opening a store runs under [`contain`],
//! which turns such a panic into the message it carried, with nothing printed: the caller
//! reports one line naming the store and what to do.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs under `contain`: its panics are caught quietly.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    /// The message (and place) of the contained panic.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`; a panic in it comes back as its message instead of unwinding further.
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let was = CONTAINED.replace(true);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.set(was);
    result.map_err(|payload| {
        CAUGHT.take().unwrap_or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned())
        })
    })
}

/// Runs `f` on a thread of its own that work under [`contain`] spawned: a panic in it is
/// printed by no one and still unwinds, for the spawner to pass on (`resume_unwind`) into its
/// `contain`, whose message it then carries.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    install_hook();
    let was = CONTAINED.replace(true);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.set(was);
    result.unwrap_or_else(|payload| panic::resume_unwind(payload))
}

/// Wraps whatever panic hook is installed once: contained threads record their panic, every
/// other thread reports as before.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CONTAINED.get() {
                let place =
                    info.location().map(|l| format!(" (at {}:{})", l.file(), l.line())).unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                CAUGHT.set(Some(format!("{message}{place}")));
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_comes_back_as_its_message_and_the_thread_goes_on() {
        assert_eq!(contain(|| 7), Ok(7));
        let caught = contain(|| -> u8 { panic!("tried to serialize {}", "Uninitialized") }).unwrap_err();
        assert!(caught.starts_with("tried to serialize Uninitialized (at "), "{caught}");
        assert!(caught.contains("damage.rs"), "{caught}");
        assert_eq!(contain(|| "after"), Ok("after"));
    }

    #[test]
    fn a_panic_on_a_spawned_thread_comes_back_through_its_spawner() {
        let caught = contain(|| {
            let joined = std::thread::scope(|scope| {
                scope.spawn(|| quietly(|| -> u8 { panic!("cannot find pid 500") })).join()
            });
            joined.unwrap_or_else(|payload| panic::resume_unwind(payload))
        })
        .unwrap_err();
        assert_eq!(caught, "cannot find pid 500");
        // Printed by no one: the hook records it, as on a contained thread.
        assert!(std::thread::spawn(|| quietly(|| CONTAINED.get())).join().unwrap());
        assert!(!std::thread::spawn(|| CONTAINED.get()).join().unwrap());
    }
}
