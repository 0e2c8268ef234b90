using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;

namespace VmClone.Disks;

/// <summary>
/// Positional reads and writes on one open file. Every read that comes up short is a format
/// error naming the file: structures that point past the end must never be trusted.
/// </summary>
internal sealed class FileAccessor : IDisposable
{
    private readonly FileStream _stream;

    // FileStream asks the file system (fstat) on every Length outside Windows, and opening a
    // layer checks structures against the length dozens of times. Other writers are shut out by
    // the share mode, so our own writes and resizes are the only changes: tracked here; -1 after
    // a failed write or resize, whose effect on the length is unknown.
    private long _length = -1;

    // The crash tests' seam: sees every write, resize and flush of this flow's files before it
    // happens, and may throw to cut the operation off there. Null (the normal case) costs nothing.
    private static readonly AsyncLocal<IFileWriteObserver?> CurrentObserver = new();

    internal static IFileWriteObserver? Observer
    {
        get => CurrentObserver.Value;
        set => CurrentObserver.Value = value;
    }

    // The tests' count of opens: told the full path of every existing file this flow opens (to
    // read, write or rewrite), so a test can state how often an operation opens a volume. Null
    // (the normal case) costs nothing.
    private static readonly AsyncLocal<Action<string>?> CurrentOpenObserver = new();

    internal static Action<string>? OpenObserver
    {
        get => CurrentOpenObserver.Value;
        set => CurrentOpenObserver.Value = value;
    }

    // The tests' count of reads: told the full path and length of every read this flow makes, so
    // a test can state how much of a volume an operation reads. Null (the normal case) costs nothing.
    private static readonly AsyncLocal<Action<string, int>?> CurrentReadObserver = new();

    internal static Action<string, int>? ReadObserver
    {
        get => CurrentReadObserver.Value;
        set => CurrentReadObserver.Value = value;
    }

    private FileAccessor(string path, FileStream stream, RegularFile.Facts facts = default)
    {
        Path = path;
        _stream = stream;
        _length = facts.Length;
        Identity = facts.Identity;
    }

    public string Path { get; }

    public bool CanWrite => _stream.CanWrite;

    public long Length => _length >= 0 ? _length : (_length = _stream.Length);

    /// <summary>Which file this is (device and inode) where the system says (Linux), so that two names of one file are seen as one; null elsewhere.</summary>
    public FileIdentity? Identity { get; }

    /// <summary>
    /// Opens a disk file. Readers share with readers only, writers with readers only: a file a
    /// running VM holds for writing is reported as in use instead of being read half-updated.
    /// Only a regular file is opened, and without waiting: a named pipe, a device, a socket or a
    /// folder is refused with a <see cref="DiskFormatException"/> whose
    /// <see cref="DiskFormatException.FileKind"/> says what it is; with
    /// <paramref name="refuseLink"/> so is a symbolic link (a VMDK extent must be a file of its own).
    /// <paramref name="share"/> is the sharing asked of others (on Unix, as FileStream: an
    /// exclusive lock for None, a shared one otherwise).
    /// </summary>
    public static FileAccessor Open(string path, FileAccess access, bool refuseLink = false, FileShare share = FileShare.Read)
    {
        string full = System.IO.Path.GetFullPath(path);
        CurrentOpenObserver.Value?.Invoke(full);
        try
        {
            return OpenSharing(full, access, refuseLink, share);
        }
        catch (FileNotFoundException ex)
        {
            throw new VirtualDiskException(full, $"Disk file '{full}' does not exist.", ex);
        }
        catch (DirectoryNotFoundException ex)
        {
            throw new VirtualDiskException(full, $"Disk file '{full}' does not exist.", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new VirtualDiskException(full, access == FileAccess.Read
                ? $"Disk file '{full}' cannot be read: access denied."
                : $"Disk file '{full}' cannot be opened for writing: it is read-only or access is denied.", ex);
        }
        catch (IOException ex) when (ex is not VirtualDiskException)
        {
            throw new VirtualDiskException(full, $"Disk file '{full}' cannot be opened: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Opens for reading (or writing) while sharing reads. A file held exclusively for an instant
    /// — another VmClone command probing whether a virtual machine has it open, which takes and
    /// drops an exclusive lock — is tried again for up to a tenth of a second; a file held for
    /// longer (a running machine) still fails at once after that.
    /// </summary>
    private static FileAccessor OpenSharing(string full, FileAccess access, bool refuseLink, FileShare share)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return OpenRegular(full, access, refuseLink, share);
            }
            catch (IOException ex) when (attempt < 10 && IsSharingViolation(ex))
            {
                Thread.Sleep(10);
            }
        }
    }

    private static FileAccessor OpenRegular(string full, FileAccess access, bool refuseLink, FileShare share)
    {
        if (RegularFile.OpenOnLinux(full, access, share, refuseLink, out RegularFile.Facts facts) is FileStream opened)
            return new FileAccessor(full, opened, facts);
        RegularFile.CheckBeforeOpen(full, refuseLink);
        try
        {
            return new FileAccessor(full, new FileStream(full, FileMode.Open, access, share, 1, FileOptions.RandomAccess));
        }
        catch (UnauthorizedAccessException) when (Directory.Exists(full))
        {
            throw RegularFile.Refusal(full, FileKind.Folder);
        }
    }

    /// <summary>EWOULDBLOCK from flock (Linux, macOS: 11, 35); ERROR_SHARING_VIOLATION or ERROR_LOCK_VIOLATION (Windows).</summary>
    private static bool IsSharingViolation(IOException ex)
    {
        if (ex is FileNotFoundException or DirectoryNotFoundException or PathTooLongException or VirtualDiskException)
            return false;
        int code = ex.HResult & 0xFFFF;
        return RuntimeInformation.IsOSPlatform(OSPlatform.Windows)
            ? code is 32 or 33
            : ex.HResult is 11 or 35;
    }

    /// <summary>
    /// Opens an existing disk file to be written again from scratch, in place: the caller writes
    /// a whole new layout, and the first <see cref="Flush"/> then makes every byte it did not
    /// write read as zero again (a hole where it was data), so the file reads as a new one would,
    /// without a new file being made or the old one freed. Null, having changed nothing, where
    /// that cannot be done: on systems that cannot report and punch holes (all but Linux), for a
    /// symbolic link or anything but a plain file, for a file with other hard links (they would
    /// see the change), for a file that cannot be opened for writing, and for a file that does
    /// not begin with <paramref name="signature"/> (another format, or a disk made of several
    /// files).
    /// </summary>
    public static FileAccessor? OpenToRewrite(string path, byte[] signature)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (!CanRewrite(full))
            return null;
        FileAccessor file;
        try
        {
            file = Open(full, FileAccess.ReadWrite);
        }
        catch (VirtualDiskException)
        {
            return null; // not writable, or held by another program: the caller's new file decides
        }
        var head = new byte[signature.Length];
        file.ReadOrZero(0, head, 0, head.Length);
        if (!head.AsSpan().SequenceEqual(signature))
        {
            file.Dispose();
            return null;
        }
        file._rewritten = new List<(long, long)>();
        return file;
    }

    /// <summary>True when this system can rewrite the file in place and it is a plain file with no other hard link (what <see cref="OpenToRewrite"/> asks before it looks inside).</summary>
    public static bool CanRewrite(string path) => !_noLinuxCalls && NativeMethods.IsLonePlainFile(System.IO.Path.GetFullPath(path));

    // While rewriting in place (OpenToRewrite): the ranges written since, until the first flush.
    private List<(long Start, long End)>? _rewritten;

    /// <summary>
    /// Makes every byte up to the length that was not written since <see cref="OpenToRewrite"/>
    /// zero: only data ranges need it (holes already read as zeros), and each is punched to a
    /// hole, or written with zeros where the file system cannot punch.
    /// </summary>
    private void ZeroWhatWasNotRewritten()
    {
        List<(long Start, long End)> written = _rewritten!;
        _rewritten = null;
        written.Sort();
        long end = Length;
        for (long at = 0; at < end;)
        {
            long dataStart = NextData(at) ?? at;
            if (dataStart >= end)
                break;
            long dataEnd = NextHole(dataStart) is long hole && hole > dataStart ? Math.Min(hole, end) : end;
            long gap = dataStart;
            foreach ((long s, long e) in written)
            {
                if (e <= gap || s >= dataEnd)
                    continue;
                if (s > gap)
                    Zero(gap, s);
                gap = Math.Max(gap, e);
            }
            if (gap < dataEnd)
                Zero(gap, dataEnd);
            at = dataEnd;
        }
    }

    private void Zero(long start, long end)
    {
        byte[] zeros = ZeroBytes.Block;
        if (CurrentObserver.Value is IFileWriteObserver observer)
        {
            for (long at = start; at < end; at += zeros.Length)
                observer.BeforeWrite(Path, at, zeros, 0, (int)Math.Min(zeros.Length, end - at));
        }
        using (Descriptor fd = HoldDescriptor())
        {
            if (NativeMethods.PunchHole(fd.Fd, start, end - start))
                return;
        }
        for (long at = start; at < end; at += zeros.Length)
        {
            _stream.Position = at;
            _stream.Write(zeros, 0, (int)Math.Min(zeros.Length, end - at));
        }
    }

    /// <summary>Creates a new file; fails if it exists.</summary>
    public static FileAccessor CreateNew(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        try
        {
            var fs = new FileStream(full, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read, 1, FileOptions.RandomAccess);
            return new FileAccessor(full, fs);
        }
        catch (IOException ex) when (File.Exists(full))
        {
            throw new VirtualDiskException(full, $"Disk file '{full}' already exists.", ex);
        }
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes at <paramref name="position"/>.</summary>
    public void ReadExactly(long position, byte[] buffer, int offset, int count, string structure)
    {
        if (position < 0 || position > Length - count)
            throw new DiskFormatException(Path, structure, $"{count} bytes at {position} lie beyond the end of the file ({Length} bytes)", position);
        CurrentReadObserver.Value?.Invoke(Path, count);
        _stream.Position = position;
        int done = 0;
        while (done < count)
        {
            int n = _stream.Read(buffer, offset + done, count - done);
            if (n <= 0)
                throw new DiskFormatException(Path, structure, "unexpected end of file", position + done);
            done += n;
        }
    }

    /// <summary>Reads up to <paramref name="count"/> bytes; zero-fills what lies past the end of the file.</summary>
    public void ReadOrZero(long position, byte[] buffer, int offset, int count)
    {
        int done = 0;
        CurrentReadObserver.Value?.Invoke(Path, count);
        if (position < Length)
        {
            _stream.Position = position;
            while (done < count)
            {
                int n = _stream.Read(buffer, offset + done, count - done);
                if (n <= 0)
                    break;
                done += n;
            }
        }
        if (done < count)
            Array.Clear(buffer, offset + done, count - done);
    }

    /// <summary>
    /// As <see cref="ReadOrZero"/>, but ranges the file system reports as holes (see
    /// <see cref="NextData"/>) are zero-filled here instead of read: reading a hole makes the
    /// system allocate and zero page-cache pages for nothing. For structures of a fixed size
    /// that a new file mostly leaves as holes (VHDX region and metadata tables).
    /// </summary>
    public void ReadSkippingHoles(long position, byte[] buffer, int offset, int count)
    {
        long end = position + count;
        long at = position;
        while (at < end)
        {
            if (NextData(at) is not long data)
            {
                ReadOrZero(at, buffer, offset + (int)(at - position), (int)(end - at));
                return;
            }
            long dataStart = Math.Min(Math.Max(data, at), end);
            if (dataStart > at)
                Array.Clear(buffer, offset + (int)(at - position), (int)(dataStart - at));
            if (dataStart >= end)
                return;
            long dataEnd = NextHole(dataStart) is long hole && hole > dataStart ? Math.Min(hole, end) : end;
            ReadOrZero(dataStart, buffer, offset + (int)(dataStart - position), (int)(dataEnd - dataStart));
            at = dataEnd;
        }
    }

    private SafeHandle? _handle;

    // The Linux file calls below (lseek SEEK_DATA/SEEK_HOLE, fallocate, sync_file_range, statx)
    // are made on Linux only, and no more once its C library turned out not to have them.
    private static bool _noLinuxCalls = !RuntimeInformation.IsOSPlatform(OSPlatform.Linux);

    /// <summary>This file's descriptor, kept from being closed while one native call uses it.</summary>
    private readonly struct Descriptor : IDisposable
    {
        private readonly SafeHandle? _held;

        public Descriptor(SafeHandle handle)
        {
            bool added = false;
            handle.DangerousAddRef(ref added);
            _held = added ? handle : null;
            Fd = handle.DangerousGetHandle().ToInt32();
        }

        public int Fd { get; }

        public void Dispose() => _held?.DangerousRelease();
    }

    // The handle is fetched once: FileStream re-syncs the descriptor's offset on every fetch.
    private Descriptor HoldDescriptor() => new(_handle ??= _stream.SafeFileHandle);

    /// <summary>
    /// Where the first byte of data at or after <paramref name="position"/> lies, as the file
    /// system reports it (Linux lseek SEEK_DATA): everything before it is a hole and reads as
    /// zeros without being read. The file length when only holes follow; null when the system
    /// cannot tell (other platforms, errors), in which case the caller reads.
    /// </summary>
    /// <remarks>
    /// Our streams read and write at explicit offsets (pread/pwrite), so moving the descriptor's
    /// own offset here changes nothing for them. File systems without hole support report all
    /// of the file as data, which only costs the read it would have taken anyway.
    /// </remarks>
    public long? NextData(long position) => SeekHoleOrData(position, NativeMethods.SeekData);

    /// <summary>
    /// Where the first hole at or after <paramref name="position"/> begins (Linux lseek
    /// SEEK_HOLE; the end of the file counts as one), or null when the system cannot tell.
    /// </summary>
    public long? NextHole(long position) => SeekHoleOrData(position, NativeMethods.SeekHole);

    private long? SeekHoleOrData(long position, int whence)
    {
        if (_noLinuxCalls || position < 0 || position >= Length)
            return null;
        try
        {
            using Descriptor fd = HoldDescriptor();
            long at = NativeMethods.lseek(fd.Fd, position, whence);
            if (at >= position)
                return Math.Min(at, Length);
            return whence == NativeMethods.SeekData && Marshal.GetLastWin32Error() == NativeMethods.ENXIO ? Length : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            _noLinuxCalls = true;
            return null;
        }
    }

    /// <summary>
    /// Reserves the file system's blocks for the file's first <paramref name="length"/> bytes
    /// without writing them (Linux fallocate, mode 0: the range reads as zeros and a later
    /// write cannot find the volume full). False where that cannot be done here: on other
    /// systems (where a file sized on Windows is allocated already) or a file system without it.
    /// </summary>
    public bool Reserve(long length)
    {
        if (_noLinuxCalls || length <= 0)
            return false;
        try
        {
            using Descriptor fd = HoldDescriptor();
            _length = -1;
            return NativeMethods.Allocate(fd.Fd, 0, length);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            _noLinuxCalls = true;
            return false;
        }
    }

    /// <summary>
    /// Gives the file system's blocks of [<paramref name="offset"/>, +<paramref name="length"/>)
    /// back, the file's length kept (Linux fallocate PUNCH_HOLE | KEEP_SIZE): the range reads as
    /// zeros from then on. For ranges that read as zeros already, so a cut-off punch changes no
    /// byte read. False where that cannot be done here (other systems, a file system without it).
    /// </summary>
    public bool PunchHole(long offset, long length)
    {
        if (_noLinuxCalls || length <= 0 || !CanWrite)
            return false;
        try
        {
            using Descriptor fd = HoldDescriptor();
            return NativeMethods.PunchHole(fd.Fd, offset, length);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            _noLinuxCalls = true;
            return false;
        }
    }

    private static class NativeMethods
    {
        public const int SeekData = 3; // Linux SEEK_DATA
        public const int SeekHole = 4; // Linux SEEK_HOLE
        public const int ENXIO = 6;

        [DllImport("libc", SetLastError = true)]
        public static extern long lseek(int fd, long offset, int whence);

        private const int AtFdCwd = -100;
        private const int AtSymlinkNoFollow = 0x100;
        private const uint StatxType = 0x1, StatxNlink = 0x4;
        private const int FallocKeepSize = 0x1, FallocPunchHole = 0x2;

        // struct statx has the same layout on every architecture: stx_nlink (u32) at 16,
        // stx_mode (u16) at 28, 256 bytes in all.
        [DllImport("libc", SetLastError = true)]
        private static extern int statx(int dirfd, string path, int flags, uint mask, byte[] buffer);

        [DllImport("libc", SetLastError = true)]
        private static extern int fallocate(int fd, int mode, long offset, long length);

        /// <summary>True for a plain file (not a link, device or folder) with no other hard link; false when unsure.</summary>
        public static bool IsLonePlainFile(string path)
        {
            var buffer = new byte[256];
            try
            {
                if (statx(AtFdCwd, path, AtSymlinkNoFollow, StatxType | StatxNlink, buffer) != 0)
                    return false;
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                return false;
            }
            uint nlink = BitConverter.ToUInt32(buffer, 16);
            int mode = BitConverter.ToUInt16(buffer, 28);
            return (mode & 0xF000) == 0x8000 && nlink == 1;
        }

        [DllImport("libc", SetLastError = true)]
        private static extern int sync_file_range(int fd, long offset, long length, uint flags);

        private const uint SyncFileRangeWrite = 0x2;

        /// <summary>Asks the system to start writing the file's dirty pages to the device, without waiting for them.</summary>
        public static void StartWriteback(int fd)
        {
            try
            {
                sync_file_range(fd, 0, 0, SyncFileRangeWrite);
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
            }
        }

        /// <summary>Allocates a range (the file grows to cover it; what was not written reads as zeros); false where the file system cannot.</summary>
        public static bool Allocate(int fd, long offset, long length) => fallocate(fd, 0, offset, length) == 0;

        /// <summary>Deallocates a range, which then reads as zeros (the length is kept); false where the file system cannot.</summary>
        public static bool PunchHole(int fd, long offset, long length)
        {
            try
            {
                return fallocate(fd, FallocPunchHole | FallocKeepSize, offset, length) == 0;
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                return false;
            }
        }
    }

    public byte[] ReadBytes(long position, int count, string structure)
    {
        var buffer = new byte[count];
        ReadExactly(position, buffer, 0, count, structure);
        return buffer;
    }

    // Bytes written since the system was last asked to start writing this file to the device
    // (Linux). The page cache would otherwise hold a long copy's writes until the flush that ends
    // it, which then waits for all of them; started every few MiB, the device writes while the
    // copy goes on reading and comparing, and the flush finds little left. Ordering is
    // unaffected: only flushes order writes, and the system may write back any page at any time.
    private long _notStarted;
    private const long WritebackStep = 8L << 20;

    public void Write(long position, byte[] buffer, int offset, int count)
    {
        CurrentObserver.Value?.BeforeWrite(Path, position, buffer, offset, count);
        _rewritten?.Add((position, position + count));
        long known = _length;
        _length = -1;
        _stream.Position = position;
        _stream.Write(buffer, offset, count);
        if (known >= 0)
            _length = Math.Max(known, position + count);
        if (!_noLinuxCalls && (_notStarted += count) >= WritebackStep)
        {
            _notStarted = 0;
            using Descriptor fd = HoldDescriptor();
            NativeMethods.StartWriteback(fd.Fd);
        }
    }

    public void Write(long position, ReadOnlySpan<byte> data)
    {
        byte[] copy = data.ToArray();
        Write(position, copy, 0, copy.Length);
    }

    public void SetLength(long length)
    {
        CurrentObserver.Value?.BeforeSetLength(Path, length);
        _length = -1;
        _stream.SetLength(length);
        _length = length;
    }

    /// <summary>Flushes to the device, not just to the OS: the ordering points of our crash safety.</summary>
    public void Flush()
    {
        if (_rewritten is not null)
            ZeroWhatWasNotRewritten();
        CurrentObserver.Value?.BeforeFlush(Path);
        _stream.Flush(flushToDisk: true);
        CurrentObserver.Value?.AfterFlush(Path);
    }

    public void Dispose() => _stream.Dispose();
}

/// <summary>Sees the writes, resizes and flushes of disk files (crash and fault-injection tests).</summary>
internal interface IFileWriteObserver
{
    void BeforeWrite(string path, long position, byte[] buffer, int offset, int count);

    void BeforeSetLength(string path, long length);

    void BeforeFlush(string path);

    void AfterFlush(string path);
}
