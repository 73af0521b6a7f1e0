//! [`SimFs`]: an in-memory, deterministic file system for the simulator and crash tests.
//!
//! Every file keeps its durable image apart from the writes made since its last sync, and the
//! directory namespace keeps its durable image apart from changes made since the directory's
//! last sync. [`SimFs::crash`] throws away everything not durable; [`SimFs::crash_torn`] keeps a
//! random prefix of each file's unsynced writes and tears the next one (a random prefix of its
//! bytes survives), as a power cut in the middle of a write would. Bits can be flipped in
//! durable data with [`SimFs::flip_bit`]. Randomness comes from one seeded generator, so a run
//! is reproducible from its seed.

use super::{FileSystem, FsFile};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// An in-memory simulated file system; clones are handles to the same one.
#[derive(Clone, Debug)]
pub struct SimFs {
    inner: Arc<Mutex<SimState>>,
}

/// An open file of [`SimFs`]. Handles opened before a crash fail afterwards.
#[derive(Clone, Debug)]
pub struct SimFile {
    fs: SimFs,
    inode: u64,
    generation: u64,
}

#[derive(Debug)]
enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

/// A file's contents: `data`, then zeros up to `len` (preallocated space is not materialised,
/// so 64 MiB segments cost only what was written). Invariant: `data.len() <= len`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Image {
    data: Vec<u8>,
    len: u64,
}

impl Image {
    /// Makes the first `upto` bytes (at most `len`) explicit.
    fn materialize(&mut self, upto: u64) {
        let upto = upto.min(self.len) as usize;
        if self.data.len() < upto {
            self.data.resize(upto, 0);
        }
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = buf.len().min((self.len - offset) as usize);
        let start = (offset as usize).min(self.data.len());
        let explicit = (self.data.len() - start).min(n);
        buf[..explicit].copy_from_slice(&self.data[start..start + explicit]);
        buf[explicit..n].fill(0);
        n
    }
}

#[derive(Debug, Default)]
struct Inode {
    durable: Image,
    current: Image,
    unsynced: Vec<Change>,
}

#[derive(Debug)]
struct SimState {
    rng: ChaCha8Rng,
    generation: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    syncs: u64,
    /// Number of upcoming `sync_data`/`sync_all` calls that fail (fault injection).
    failing_syncs: u64,
    /// Number of upcoming `write_at` calls that fail (fault injection).
    failing_writes: u64,
}

fn apply(image: &mut Image, change: &Change) {
    match change {
        Change::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if image.data.len() < end {
                image.data.resize(end, 0);
            }
            image.data[start..end].copy_from_slice(data);
            image.len = image.len.max(end as u64);
        }
        Change::SetLen(len) => {
            image.data.truncate(*len as usize);
            image.len = *len;
        }
    }
    debug_assert!(image.data.len() as u64 <= image.len);
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl SimFs {
    /// A new, empty file system whose random choices derive from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut dirs = BTreeSet::new();
        dirs.insert(PathBuf::from("/"));
        SimFs {
            inner: Arc::new(Mutex::new(SimState {
                rng: ChaCha8Rng::seed_from_u64(seed),
                generation: 0,
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                dirs,
                inodes: HashMap::new(),
                next_inode: 1,
                syncs: 0,
                failing_syncs: 0,
                failing_writes: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock can only come from a bug in this module; the state is
        // still consistent enough to read, so recover the guard rather than propagate poison.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Crash (power loss): every unsynced write and every unsynced directory change is lost.
    /// Handles opened before the crash become unusable.
    pub fn crash(&self) {
        self.lock().crash(false);
    }

    /// Crash in the middle of writing: for each file, a random prefix of its unsynced writes
    /// survives and the write after it is torn (a random prefix of its bytes survives).
    /// Unsynced directory changes are lost. Handles opened before the crash become unusable.
    pub fn crash_torn(&self) {
        self.lock().crash(true);
    }

    /// Flips bit `bit % 8` of the byte at `offset` of `path`, in both its durable and current
    /// contents (a media error). Fails if the file is shorter.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        let mut st = self.lock();
        let id = *st.names.get(path).ok_or_else(|| not_found(path))?;
        let inode = st.inodes.get_mut(&id).ok_or_else(|| not_found(path))?;
        if offset >= inode.current.len || offset >= inode.durable.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "flip beyond end of file",
            ));
        }
        let off = offset as usize;
        for image in [&mut inode.current, &mut inode.durable] {
            image.materialize(offset + 1);
            image.data[off] ^= 1 << (bit % 8);
        }
        Ok(())
    }

    /// Overwrites durable and current contents of `path` at `offset` with `data` (garbage
    /// written by a misbehaving disk), extending the file if needed.
    pub fn corrupt(&self, path: &Path, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.lock();
        let id = *st.names.get(path).ok_or_else(|| not_found(path))?;
        let inode = st.inodes.get_mut(&id).ok_or_else(|| not_found(path))?;
        let change = Change::Write {
            offset,
            data: data.to_vec(),
        };
        apply(&mut inode.current, &change);
        apply(&mut inode.durable, &change);
        Ok(())
    }

    /// The current contents of `path` (what a read sees now).
    pub fn contents(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.lock();
        let id = *st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(st
            .inodes
            .get(&id)
            .map(|i| {
                let mut image = i.current.clone();
                image.materialize(image.len);
                image.data
            })
            .unwrap_or_default())
    }

    /// How many `sync_data`/`sync_all` calls were made so far (to check group commit).
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// Makes the next `n` file syncs fail with an IO error (their data stays unsynced).
    pub fn fail_next_syncs(&self, n: u64) {
        self.lock().failing_syncs = n;
    }

    /// Makes the next `n` file writes fail with an IO error (nothing is written).
    pub fn fail_next_writes(&self, n: u64) {
        self.lock().failing_writes = n;
    }

    /// A random number from the file system's seeded generator, for tests that want their
    /// choices reproducible from the same seed.
    pub fn random_u64(&self) -> u64 {
        self.lock().rng.random()
    }

    fn with_inode<T>(
        &self,
        file: &SimFile,
        f: impl FnOnce(&mut Inode, &mut SimState) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.generation != file.generation {
            return Err(io::Error::other("file handle opened before a crash"));
        }
        let mut inode = st
            .inodes
            .remove(&file.inode)
            .ok_or_else(|| io::Error::other("file handle of a vanished file"))?;
        let result = f(&mut inode, st);
        st.inodes.insert(file.inode, inode);
        result
    }
}

impl SimState {
    fn crash(&mut self, torn: bool) {
        self.generation += 1;
        self.names = self.durable_names.clone();
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|id, _| live.contains(id));
        let mut ids: Vec<u64> = self.inodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(inode) = self.inodes.get_mut(&id) else {
                continue;
            };
            let changes = std::mem::take(&mut inode.unsynced);
            let mut image = std::mem::take(&mut inode.durable);
            if torn && !changes.is_empty() {
                let keep = self.rng.random_range(0..=changes.len());
                for change in &changes[..keep] {
                    apply(&mut image, change);
                }
                if let Some(Change::Write { offset, data }) = changes.get(keep) {
                    let cut = self.rng.random_range(0..=data.len());
                    let change = Change::Write {
                        offset: *offset,
                        data: data[..cut].to_vec(),
                    };
                    apply(&mut image, &change);
                }
            }
            inode.current = image.clone();
            inode.durable = image;
        }
    }

    fn parent_of(path: &Path) -> io::Result<PathBuf> {
        path.parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))
    }

    fn check_dir(&self, path: &Path) -> io::Result<()> {
        let parent = Self::parent_of(path)?;
        if self.dirs.contains(&parent) {
            Ok(())
        } else {
            Err(not_found(&parent))
        }
    }
}

impl FsFile for SimFile {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fs.with_inode(self, |inode, st| {
            if st.failing_writes > 0 {
                st.failing_writes -= 1;
                return Err(io::Error::other("injected write failure"));
            }
            let change = Change::Write {
                offset,
                data: data.to_vec(),
            };
            apply(&mut inode.current, &change);
            inode.unsynced.push(change);
            Ok(())
        })
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.fs
            .with_inode(self, |inode, _| Ok(inode.current.read(offset, buf)))
    }

    fn size(&self) -> io::Result<u64> {
        self.fs.with_inode(self, |inode, _| Ok(inode.current.len))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.with_inode(self, |inode, _| {
            let change = Change::SetLen(len);
            apply(&mut inode.current, &change);
            inode.unsynced.push(change);
            Ok(())
        })
    }

    fn preallocate(&self, len: u64) -> io::Result<()> {
        self.fs.with_inode(self, |inode, _| {
            if inode.current.len < len {
                let change = Change::SetLen(len);
                apply(&mut inode.current, &change);
                inode.unsynced.push(change);
            }
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.fs.with_inode(self, |inode, st| {
            if st.failing_syncs > 0 {
                st.failing_syncs -= 1;
                return Err(io::Error::other("injected fsync failure"));
            }
            st.syncs += 1;
            for change in std::mem::take(&mut inode.unsynced) {
                apply(&mut inode.durable, &change);
            }
            debug_assert_eq!(inode.durable, inode.current);
            Ok(())
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
}

impl FileSystem for SimFs {
    type File = SimFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        // Directories are durable as soon as they exist: a simplification, since the crate
        // only creates them once, before any data goes in.
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                st.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut st = self.lock();
        st.check_dir(path)?;
        if st.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let id = st.next_inode;
        st.next_inode += 1;
        st.inodes.insert(id, Inode::default());
        st.names.insert(path.to_path_buf(), id);
        Ok(SimFile {
            fs: self.clone(),
            inode: id,
            generation: st.generation,
        })
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let st = self.lock();
        let id = *st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(SimFile {
            fs: self.clone(),
            inode: id,
            generation: st.generation,
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let mut names: Vec<String> = st
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.check_dir(to)?;
        let id = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        st.syncs += 1;
        st.durable_names.retain(|p, _| p.parent() != Some(dir));
        let live: Vec<(PathBuf, u64)> = st
            .names
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        st.durable_names.extend(live);
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let st = self.lock();
        Ok(st.names.contains_key(path) || st.dirs.contains(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(seed: u64) -> (SimFs, SimFile, PathBuf) {
        let fs = SimFs::new(seed);
        let dir = PathBuf::from("/d");
        fs.create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let f = fs.create(&path).unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(&dir).unwrap();
        (fs, f, path)
    }

    #[test]
    fn crash_loses_unsynced_data_and_names() {
        let (fs, f, path) = setup(1);
        f.write_at(0, b"durable").unwrap();
        f.sync_data().unwrap();
        f.write_at(7, b" lost").unwrap();
        let g = fs.create(Path::new("/d/new")).unwrap();
        g.write_at(0, b"x").unwrap();
        g.sync_data().unwrap(); // data synced, but the name never was
        fs.crash();
        assert_eq!(fs.contents(&path).unwrap(), b"durable");
        assert!(!fs.exists(Path::new("/d/new")).unwrap());
        assert!(f.write_at(0, b"stale handle").is_err());
    }

    #[test]
    fn preallocated_space_reads_as_zeros_and_survives_once_synced() {
        let (fs, f, path) = setup(2);
        f.preallocate(64 << 20).unwrap();
        f.write_at(10, b"abc").unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size().unwrap(), 64 << 20);
        let mut buf = [9u8; 16];
        assert_eq!(f.read_at((64 << 20) - 8, &mut buf).unwrap(), 8);
        assert_eq!(&buf[..8], &[0; 8]);
        assert_eq!(f.read_at(8, &mut buf[..6]).unwrap(), 6);
        assert_eq!(&buf[..6], b"\0\0abc\0");
        fs.crash();
        let f = fs.open(&path).unwrap();
        assert_eq!(f.size().unwrap(), 64 << 20);
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_the_unsynced_writes() {
        let mut seen_partial = false;
        let mut seen_none = false;
        for seed in 0..64 {
            let (fs, f, path) = setup(seed);
            f.write_at(0, &[1u8; 100]).unwrap();
            f.write_at(100, &[2u8; 100]).unwrap();
            fs.crash_torn();
            let got = fs.contents(&path).unwrap();
            let expected: Vec<u8> = [[1u8; 100], [2u8; 100]].concat();
            assert_eq!(
                &got[..],
                &expected[..got.len()],
                "seed {seed}: not a prefix"
            );
            seen_partial |= !got.is_empty() && got.len() < 200;
            seen_none |= got.is_empty();
        }
        assert!(seen_partial && seen_none);
    }

    #[test]
    fn injected_failures_fail_and_then_clear() {
        let (fs, f, _) = setup(3);
        fs.fail_next_writes(1);
        assert!(f.write_at(0, b"a").is_err());
        f.write_at(0, b"a").unwrap();
        fs.fail_next_syncs(1);
        assert!(f.sync_data().is_err());
        f.sync_data().unwrap();
    }
}
