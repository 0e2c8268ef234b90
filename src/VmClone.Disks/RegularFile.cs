using System;
using System.ComponentModel;
using System.IO;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace VmClone.Disks;

/// <summary>
/// Opens only regular files, in a way that cannot block. A disk, an extent or a parent is named
/// by a caller or by a file someone else wrote: a named pipe there makes a plain open wait for a
/// writer forever, and a device reads as an endless or empty disk (or copies a whole host disk
/// into an image). On Linux the file is opened without blocking (O_NONBLOCK), its type is read
/// from the open descriptor, so that a file swapped for a pipe after any check is still caught,
/// and only a regular file's descriptor is made blocking again, locked the way FileStream locks
/// (flock: shared unless FileShare.None, as .NET emulates FileShare on Unix) and handed to a
/// FileStream. Elsewhere the path is checked just before the open.
/// </summary>
internal static class RegularFile
{
    private static readonly bool IsLinux = RuntimeInformation.IsOSPlatform(OSPlatform.Linux);
    private static readonly bool IsMac = RuntimeInformation.IsOSPlatform(OSPlatform.OSX);
    private static readonly bool IsWindows = RuntimeInformation.IsOSPlatform(OSPlatform.Windows);

    // Cleared once the C library turns out not to have open/fcntl/flock (then the path is opened as before).
    private static bool _linuxOpen = IsLinux;

    /// <summary>What the system reports about a file just opened.</summary>
    public readonly struct Facts
    {
        public Facts(long length, FileIdentity? identity)
        {
            Length = length;
            Identity = identity;
        }

        /// <summary>The file's length, or -1 when not known.</summary>
        public long Length { get; }

        public FileIdentity? Identity { get; }
    }

    /// <summary>
    /// Opens the regular file at <paramref name="full"/> (Linux), or returns null where the calls
    /// this needs are missing; the caller then calls <see cref="CheckBeforeOpen"/> and opens the
    /// path itself. Throws the exceptions FileStream would (FileNotFoundException,
    /// UnauthorizedAccessException, IOException with the errno as HResult for a file locked by
    /// another), and <see cref="Refusal"/> for anything but a regular file; with
    /// <paramref name="refuseLink"/> a symbolic link is refused too.
    /// </summary>
    public static FileStream? OpenOnLinux(string full, FileAccess access, FileShare share, bool refuseLink, out Facts facts)
    {
        facts = new Facts(-1, null);
        if (!_linuxOpen)
            return null;
        int flags = (access == FileAccess.Read ? Linux.ORdOnly : Linux.ORdWr) | Linux.ONonBlock | Linux.OCloExec | Linux.ONoCtty
            | (refuseLink ? Linux.ONoFollow : 0);
        int fd;
        try
        {
            do
            {
                fd = Linux.open(full, flags, 0);
            }
            while (fd < 0 && Marshal.GetLastWin32Error() == Linux.EINTR);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            _linuxOpen = false;
            return null;
        }
        if (fd < 0)
            throw OpenError(full, Marshal.GetLastWin32Error(), refuseLink);

        var handle = new SafeFileHandle((IntPtr)fd, ownsHandle: true);
        try
        {
            FileKind? kind = Linux.Describe(fd, out long length, out FileIdentity? identity);
            if (kind is FileKind k && k != FileKind.RegularFile)
                throw Refusal(full, k);
            // Back to blocking before anything reads or writes: the descriptor now names a regular file.
            if (Linux.fcntl(fd, Linux.FSetFl, 0) != 0)
                throw Linux.Error(full, Marshal.GetLastWin32Error());
            Linux.Lock(fd, full, access, share);
            Linux.posix_fadvise(fd, 0, 0, Linux.PosixFadvRandom);
            facts = new Facts(length, identity);
            return new FileStream(handle, access, 1, isAsync: false);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            handle.Dispose();
            _linuxOpen = false;
            return null;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Where the file cannot be opened without blocking (all but Linux): refuses anything the
    /// system reports as not a regular file (macOS), a symbolic link when <paramref name="refuseLink"/>
    /// (macOS, Windows). A missing file is left to the open to report.
    /// </summary>
    public static void CheckBeforeOpen(string full, bool refuseLink)
    {
        if (IsWindows)
        {
            if (refuseLink && File.Exists(full) && (File.GetAttributes(full) & FileAttributes.ReparsePoint) != 0)
                throw Refusal(full, FileKind.SymbolicLink);
            return;
        }
        if (KindOf(full, followLinks: false) is not FileKind own)
            return;
        if (own == FileKind.SymbolicLink)
        {
            if (refuseLink)
                throw Refusal(full, FileKind.SymbolicLink);
            own = KindOf(full, followLinks: true) ?? FileKind.RegularFile;
        }
        if (own != FileKind.RegularFile)
            throw Refusal(full, own);
    }

    /// <summary>What <paramref name="path"/> is (its link target's kind when <paramref name="followLinks"/>), or null when missing or the system cannot tell.</summary>
    public static FileKind? KindOf(string path, bool followLinks)
    {
        try
        {
            if (IsLinux)
                return Linux.KindOf(path, followLinks);
            if (IsMac)
                return Mac.KindOf(path, followLinks);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
        }
        if (Directory.Exists(path))
            return FileKind.Folder;
        return null;
    }

    /// <summary>
    /// The refusal of <paramref name="full"/>, which is a <paramref name="kind"/>: a
    /// <see cref="DiskFormatException"/> with <see cref="DiskFormatException.FileKind"/> set,
    /// saying what the file is (and where it leads, when a symbolic link led there).
    /// </summary>
    public static DiskFormatException Refusal(string full, FileKind kind)
    {
        string? through = kind != FileKind.SymbolicLink && KindOf(full, followLinks: false) == FileKind.SymbolicLink
            ? PathUtil.RealPath(full) ?? PathUtil.LinkTarget(full)
            : null;
        string reason;
        if (kind == FileKind.SymbolicLink)
            reason = $"is a symbolic link (to '{PathUtil.RealPath(full) ?? PathUtil.LinkTarget(full) ?? "a link loop"}'), not a file of its own";
        else if (through is not null)
            reason = $"is a symbolic link to '{through}', which is {Describe(kind)}, not a disk file";
        else
            reason = $"is {Describe(kind)}, not a disk file";
        return new DiskFormatException(full, kind, reason, $"'{full}' {reason}; only regular files are opened as disks.");
    }

    /// <summary>The kind in words, as in "is a named pipe (FIFO)".</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.RegularFile => "a regular file",
        FileKind.Folder => "a folder",
        FileKind.NamedPipe => "a named pipe (FIFO)",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Socket => "a socket",
        FileKind.SymbolicLink => "a symbolic link",
        _ => "a special file",
    };

    private static FileKind KindFromMode(int mode) => (mode & 0xF000) switch
    {
        0x8000 => FileKind.RegularFile,
        0x4000 => FileKind.Folder,
        0x1000 => FileKind.NamedPipe,
        0x2000 => FileKind.CharacterDevice,
        0x6000 => FileKind.BlockDevice,
        0xC000 => FileKind.Socket,
        0xA000 => FileKind.SymbolicLink,
        _ => FileKind.Other,
    };

    /// <summary>The exception for a failed open(2), as FileStream would raise it; a path that is no regular file is refused as such.</summary>
    private static Exception OpenError(string full, int errno, bool refuseLink)
    {
        switch (errno)
        {
            case Linux.ENOENT:
                return new FileNotFoundException($"Could not find file '{full}'.", full);
            case Linux.ENOTDIR:
                return new DirectoryNotFoundException($"Could not find a part of the path '{full}'.");
            case Linux.EISDIR:
                return Refusal(full, FileKind.Folder);
            case Linux.EWOULDBLOCK:
                return Linux.InUse(full);
            case Linux.ELOOP when refuseLink && KindOf(full, followLinks: false) == FileKind.SymbolicLink:
                return Refusal(full, FileKind.SymbolicLink);
        }
        // A device or socket may fail to open (ENXIO, EACCES, ENODEV …): say what it is, not why its open failed.
        if (KindOf(full, followLinks: true) is FileKind kind && kind != FileKind.RegularFile)
            return Refusal(full, kind);
        if (errno is Linux.EACCES or Linux.EPERM)
            return new UnauthorizedAccessException($"Access to the path '{full}' is denied.");
        return Linux.Error(full, errno);
    }

    /// <summary>Linux system calls (glibc and musl); flag values for every Linux architecture .NET runs on.</summary>
    /// <summary>
    /// Bytes the file system has allocated for the file at <paramref name="path"/>: on Linux
    /// st_blocks × 512 (statx), on Windows the size GetCompressedFileSize reports (less than the
    /// length for a sparse or compressed file); null where the system cannot say (macOS, a
    /// kernel without statx), and the caller then shows the length.
    /// </summary>
    public static long? AllocatedBytes(string path)
    {
        try
        {
            if (IsLinux)
                return Linux.AllocatedBytes(path);
            if (IsWindows)
                return Windows.AllocatedBytes(path);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
        }
        return null;
    }

    /// <summary>Windows: GetCompressedFileSize, the allocated size of a sparse or compressed file (the length otherwise).</summary>
    private static class Windows
    {
        private const uint InvalidFileSize = 0xFFFFFFFF;

        [DllImport("kernel32", CharSet = CharSet.Unicode, SetLastError = true, EntryPoint = "GetCompressedFileSizeW")]
        private static extern uint GetCompressedFileSize(string path, out uint high);

        public static long? AllocatedBytes(string path)
        {
            uint low = GetCompressedFileSize(path, out uint high);
            if (low == InvalidFileSize && Marshal.GetLastWin32Error() != 0)
                return null;
            return ((long)high << 32) | low;
        }
    }

    private static class Linux
    {
        public const int ORdOnly = 0, ORdWr = 2, ONoCtty = 0x100, ONonBlock = 0x800, OCloExec = 0x80000;
        public const int EPERM = 1, ENOENT = 2, EINTR = 4, EWOULDBLOCK = 11, EACCES = 13, ENOTDIR = 20, EISDIR = 21, ENOSYS = 38, ELOOP = 40;
        public const int FSetFl = 4;
        public const int PosixFadvRandom = 1;
        private const int LockSh = 1, LockEx = 2, LockNb = 4;
        private const int AtEmptyPath = 0x1000, AtSymlinkNoFollow = 0x100;
        private const uint StatxType = 0x1, StatxIno = 0x100, StatxSize = 0x200, StatxBlocks = 0x400;

        // O_NOFOLLOW is 0400000 on most architectures but 0100000 on ARM and POWER.
        public static readonly int ONoFollow = RuntimeInformation.ProcessArchitecture.ToString() is "Arm" or "Arm64" or "Armv6" or "Ppc64le"
            ? 0x8000
            : 0x20000;

        [DllImport("libc", SetLastError = true)]
        public static extern int open(string path, int flags, int mode);

        [DllImport("libc", SetLastError = true)]
        public static extern int fcntl(int fd, int command, int argument);

        [DllImport("libc", SetLastError = true)]
        private static extern int flock(int fd, int operation);

        [DllImport("libc", SetLastError = true)]
        private static extern int fstatfs(int fd, byte[] buffer);

        [DllImport("libc")]
        public static extern int posix_fadvise(int fd, long offset, long length, int advice);

        [DllImport("libc", SetLastError = true)]
        private static extern int statx(int dirfd, string path, int flags, uint mask, byte[] buffer);

        [DllImport("libc", EntryPoint = "fstat", SetLastError = true)]
        private static extern int fstat(int fd, byte[] buffer);

        private const int AtFdCwd = -100;

        private static bool _noStatx;

        /// <summary>
        /// The kind, length and identity of the open file; null kind when the system cannot say.
        /// statx (struct statx is the same on every architecture) where the C library and the
        /// kernel have it, else fstat, whose layout is known for x64 and ARM64 only.
        /// </summary>
        public static FileKind? Describe(int fd, out long length, out FileIdentity? identity)
        {
            var buffer = new byte[256];
            if (!_noStatx)
            {
                try
                {
                    if (statx(fd, "", AtEmptyPath, StatxType | StatxIno | StatxSize, buffer) == 0)
                    {
                        // stx_mask at 0, stx_mode (u16) at 28, stx_ino at 32, stx_size at 40, stx_dev_major/minor at 136/140.
                        uint mask = BitConverter.ToUInt32(buffer, 0);
                        length = (mask & StatxSize) != 0 ? BitConverter.ToInt64(buffer, 40) : -1;
                        identity = (mask & StatxIno) != 0
                            ? new FileIdentity(((ulong)BitConverter.ToUInt32(buffer, 136) << 32) | BitConverter.ToUInt32(buffer, 140), BitConverter.ToUInt64(buffer, 32))
                            : null;
                        return (mask & StatxType) != 0 ? KindFromMode(BitConverter.ToUInt16(buffer, 28)) : null;
                    }
                    // A kernel without statx, or a sandbox that forbids it (some container
                    // profiles answer EPERM): fstat from now on.
                    if (Marshal.GetLastWin32Error() is ENOSYS or EPERM)
                        _noStatx = true;
                }
                catch (EntryPointNotFoundException)
                {
                    _noStatx = true;
                }
            }
            length = -1;
            identity = null;
            int modeAt = RuntimeInformation.ProcessArchitecture switch
            {
                Architecture.X64 => 24,
                Architecture.Arm64 => 16,
                _ => -1,
            };
            if (modeAt < 0)
                return null;
            try
            {
                if (fstat(fd, buffer) != 0)
                    return null;
            }
            catch (EntryPointNotFoundException)
            {
                return null;
            }
            // st_dev at 0, st_ino at 8, st_size at 48 on both.
            length = BitConverter.ToInt64(buffer, 48);
            identity = new FileIdentity(BitConverter.ToUInt64(buffer, 0), BitConverter.ToUInt64(buffer, 8));
            return KindFromMode((int)BitConverter.ToUInt32(buffer, modeAt));
        }

        /// <summary>st_blocks × 512 of the file at a path (statx, following links), or null when unknown.</summary>
        public static long? AllocatedBytes(string path)
        {
            if (_noStatx)
                return null;
            var buffer = new byte[256];
            try
            {
                if (statx(AtFdCwd, path, 0, StatxBlocks, buffer) != 0)
                    return null;
            }
            catch (EntryPointNotFoundException)
            {
                _noStatx = true;
                return null;
            }
            // stx_blocks (u64, 512-byte units) at 48.
            return (BitConverter.ToUInt32(buffer, 0) & StatxBlocks) != 0 ? BitConverter.ToInt64(buffer, 48) * 512 : null;
        }

        /// <summary>The kind of the file at a path, without opening it; null when missing or unknown.</summary>
        public static FileKind? KindOf(string path, bool followLinks)
        {
            if (_noStatx)
                return Directory.Exists(path) ? FileKind.Folder : null;
            var buffer = new byte[256];
            try
            {
                if (statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxType, buffer) != 0)
                    return null;
            }
            catch (EntryPointNotFoundException)
            {
                _noStatx = true;
                return Directory.Exists(path) ? FileKind.Folder : null;
            }
            return KindFromMode(BitConverter.ToUInt16(buffer, 28));
        }

        // NFS, SMB, SMB2 and CIFS magic numbers (statfs f_type): .NET does not take a shared lock
        // for writing there (writes were seen dropped), and neither do we.
        private static readonly uint[] NoSharedWriteLock = { 0x6969, 0x517B, 0xFE534D42, 0xFF534D42 };

        private static readonly bool LockingDisabled =
            (AppContext.TryGetSwitch("System.IO.DisableFileLocking", out bool disabled) && disabled)
            || Environment.GetEnvironmentVariable("DOTNET_SYSTEM_IO_DISABLEFILELOCKING") is string v
               && (v == "1" || string.Equals(v, "true", StringComparison.OrdinalIgnoreCase));

        /// <summary>
        /// The advisory lock FileStream takes for <paramref name="share"/> (exclusive for
        /// FileShare.None, shared otherwise; none for a shared write lock on a network file
        /// system, or when .NET's file locking is switched off), so that other programs and
        /// VmClone's own in-use probe see exactly what they saw before.
        /// </summary>
        public static void Lock(int fd, string full, FileAccess access, FileShare share)
        {
            if (LockingDisabled)
                return;
            int operation = share == FileShare.None ? LockEx : LockSh;
            if (operation == LockSh && access != FileAccess.Read)
            {
                var buffer = new byte[256];
                if (fstatfs(fd, buffer) != 0 || Array.IndexOf(NoSharedWriteLock, BitConverter.ToUInt32(buffer, 0)) >= 0)
                    return;
            }
            while (flock(fd, operation | LockNb) != 0)
            {
                int errno = Marshal.GetLastWin32Error();
                if (errno == EINTR)
                    continue;
                // As FileStream: only a lock held by another counts; a file system without locks is opened unlocked.
                if (errno == EWOULDBLOCK)
                    throw InUse(full);
                return;
            }
        }

        /// <summary>What FileStream raises for a file another holds locked: an IOException whose HResult is the errno.</summary>
        public static IOException InUse(string full) =>
            new($"The process cannot access the file '{full}' because it is being used by another process.", EWOULDBLOCK);

        public static IOException Error(string full, int errno) =>
            new($"{new Win32Exception(errno).Message} : '{full}'", errno);
    }

    /// <summary>macOS: lstat/stat (64-bit inode struct stat: st_mode, u16, at offset 4).</summary>
    private static class Mac
    {
        [DllImport("libc", EntryPoint = "lstat$INODE64", SetLastError = true)]
        private static extern int lstat64(string path, byte[] buffer);

        [DllImport("libc", EntryPoint = "stat$INODE64", SetLastError = true)]
        private static extern int stat64(string path, byte[] buffer);

        [DllImport("libc", EntryPoint = "lstat", SetLastError = true)]
        private static extern int lstatArm(string path, byte[] buffer);

        [DllImport("libc", EntryPoint = "stat", SetLastError = true)]
        private static extern int statArm(string path, byte[] buffer);

        public static FileKind? KindOf(string path, bool followLinks)
        {
            var buffer = new byte[256];
            // On x64 the plain names are the old 32-bit-inode calls; ARM64 has only the 64-bit ones.
            bool x64 = RuntimeInformation.ProcessArchitecture == Architecture.X64;
            int result = followLinks
                ? (x64 ? stat64(path, buffer) : statArm(path, buffer))
                : (x64 ? lstat64(path, buffer) : lstatArm(path, buffer));
            return result == 0 ? KindFromMode(BitConverter.ToUInt16(buffer, 4)) : null;
        }
    }
}

/// <summary>Which file an open descriptor is (device and inode): two names of one file have one identity.</summary>
internal readonly struct FileIdentity : IEquatable<FileIdentity>
{
    public FileIdentity(ulong device, ulong inode)
    {
        Device = device;
        Inode = inode;
    }

    public ulong Device { get; }

    public ulong Inode { get; }

    public bool Equals(FileIdentity other) => Device == other.Device && Inode == other.Inode;

    public override bool Equals(object? obj) => obj is FileIdentity other && Equals(other);

    public override int GetHashCode() => (Device.GetHashCode() * 397) ^ Inode.GetHashCode();
}
