using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using VmClone.Disks;

namespace VmClone.Fuzz;

/// <summary>What a fuzz input is made into.</summary>
public enum FuzzTarget
{
    /// <summary>One VHDX file (usually given sparse, see <see cref="FuzzInput"/>).</summary>
    Vhdx,
    /// <summary>One VMDK file: monolithic sparse, streamOptimized, a delta, or a descriptor alone.</summary>
    Vmdk,
    /// <summary>Several files (descriptor and extents, child and parents) in one folder; the first is opened.</summary>
    Chain,
    /// <summary>One VHD file: fixed, dynamic or differencing (its footer and dynamic header checksums repaired).</summary>
    Vhd,
    /// <summary>One qcow2 image (version 2 or 3, compressed clusters, extended L2, a backing file named).</summary>
    Qcow2,
}

/// <summary>
/// An input made the engine break a promise: an exception other than its own refusals, a
/// change to a file opened read-only or refused, a written sector that reads back otherwise,
/// a conversion that differs from its source, or a cost out of proportion to the input.
/// </summary>
public sealed class FuzzFindingException : Exception
{
    public FuzzFindingException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}

/// <summary>
/// One fuzz execution, the same for afl-fuzz and for the regression tests that replay what it
/// found: the input becomes files in a fresh folder (VHDX checksums repaired, see
/// <see cref="ChecksumRepair"/>), which are opened as one layer and as a chain, read in a few
/// ranges and checked as Test-VmDisk checks them (<see cref="DiskLayer.Check"/> on every
/// layer); then, for a share of inputs chosen by the input's checksum, a copy is opened
/// read-write and written, and the disk is converted to the other format and compared.
/// Success and the engine's refusals (<see cref="VirtualDiskException"/>, so also
/// <see cref="DiskFormatException"/> and <see cref="DiskChainException"/>) return normally;
/// anything else escapes, either as the engine's own exception or as a
/// <see cref="FuzzFindingException"/>.
/// </summary>
public sealed class FuzzHarness : IDisposable
{
    /// <summary>No phase may allocate more than this much managed memory for an input of at most 1 MiB (32 MiB decoded).</summary>
    public const long MaxAllocatedBytes = 256L << 20;

    /// <summary>Conversions are tried on disks up to this capacity (the copy and the comparison read all of it).</summary>
    public const long MaxConvertCapacity = 16L << 20;

    private const int ProbeLength = 64 * 1024;

    private readonly FuzzTarget _target;
    private readonly string _root;
    private readonly byte[] _buffer = new byte[1 << 20];
    private readonly byte[] _other = new byte[1 << 20];

    /// <summary>A harness working in a folder of its own under <paramref name="workFolder"/> (default: the temp folder).</summary>
    public FuzzHarness(FuzzTarget target, string? workFolder = null)
    {
        _target = target;
        string parent = workFolder ?? Path.GetTempPath();
        _root = Path.Combine(parent, $"vmclone-fuzz-{target.ToString().ToLowerInvariant()}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N").Substring(0, 8)}");
        Directory.CreateDirectory(_root);
    }

    /// <summary>The extension a single file of this target is given (its name decides how a file without signature is refused).</summary>
    public static string Extension(FuzzTarget target) => target switch
    {
        FuzzTarget.Vhdx => ".vhdx",
        FuzzTarget.Vhd => ".vhd",
        FuzzTarget.Qcow2 => ".qcow2",
        _ => ".vmdk",
    };

    /// <summary>The files an input stands for, checksums repaired; the first is the disk to open.</summary>
    public static List<FuzzFile> Decode(FuzzTarget target, ReadOnlySpan<byte> input)
    {
        List<FuzzFile> files = target == FuzzTarget.Chain
            ? FuzzInput.DecodeChain(input, Extension(target))
            : new List<FuzzFile> { new("disk" + Extension(target), FuzzInput.DecodeFile(input)) };
        foreach (FuzzFile f in files)
        {
            ChecksumRepair.RepairVhdx(f.Bytes);
            ChecksumRepair.RepairVhd(f.Bytes);
        }
        return files;
    }

    /// <summary>
    /// Runs one input; returns when the engine read it or refused it with its own exception.
    /// The write and convert phases run for the share of inputs the input's checksum selects,
    /// or always with <paramref name="allPhases"/> (how the seeds are replayed).
    /// </summary>
    public void Run(ReadOnlySpan<byte> input, bool allPhases = false)
    {
        List<FuzzFile> files = Decode(_target, input);
        uint selector = ChecksumRepair.Crc32C(input);

        string ro = Fresh("ro");
        WriteFiles(ro, files);
        string top = Path.Combine(ro, files[0].Name);
        Phase("opening one layer", () => ExerciseLayer(top));
        bool chainOpened = Phase("opening the chain", () => ExerciseChain(top, ro));
        EnsureUnchanged(ro, files, "a read-only open");

        if (allPhases || selector % 4 == 0)
        {
            string rw = Fresh("rw");
            WriteFiles(rw, files);
            Phase("writing a copy", () => ExerciseWrite(rw, files, selector, chainOpened));
        }
        if (chainOpened && (allPhases || selector % 8 == 1))
        {
            string converted = Fresh("convert");
            Phase("converting", () => ExerciseConvert(top, ro, converted));
            EnsureUnchanged(ro, files, "a conversion");
        }
    }

    /// <summary>
    /// Runs one phase: true when it ended without a refusal. A refusal must name its file; no
    /// phase may allocate more than <see cref="MaxAllocatedBytes"/>.
    /// </summary>
    private static bool Phase(string what, Action action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        bool ok = true;
        try
        {
            action();
        }
        catch (VirtualDiskException ex)
        {
            ok = false;
            string name = Path.GetFileName(ex.Path);
            if (!ex.Message.Contains(name, StringComparison.Ordinal))
                throw new FuzzFindingException($"{what}: the refusal does not name its file '{name}': {ex.Message}", ex);
        }
        long used = GC.GetAllocatedBytesForCurrentThread() - before;
        if (used > MaxAllocatedBytes)
            throw new FuzzFindingException($"{what}: {used >> 20} MiB allocated (bound {MaxAllocatedBytes >> 20} MiB)");
        return ok;
    }

    private void ExerciseLayer(string path)
    {
        using DiskLayer layer = VirtualDisk.OpenLayer(path, FileAccess.Read);
        _ = layer.Identity;
        _ = layer.ParentReference;
        _ = layer.Details;
        _ = layer.AllocatedBytes;
        long size = layer.VirtualSize;
        foreach (long at in Probes(size, layer.BlockSize))
        {
            long end = Math.Min(size, at + ProbeLength);
            for (long pos = at; pos < end;)
            {
                LayerExtent extent = layer.GetExtent(pos, end - pos);
                if (extent.Length <= 0)
                    throw new FuzzFindingException($"'{path}': GetExtent({pos}, {end - pos}) returned an empty extent");
                int n = (int)Math.Min(extent.Length, end - pos);
                if (extent.Kind == ExtentKind.Data)
                    layer.ReadData(pos, _buffer, 0, n);
                pos += n;
            }
        }
        layer.Check();
    }

    private void ExerciseChain(string path, string folder)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = folder });
        long capacity = disk.Capacity;
        foreach (long at in Probes(capacity, disk.Top.BlockSize))
            Read(disk.Content, at, (int)Math.Min(ProbeLength, capacity - at), _buffer);
        _ = disk.MapExtents(0, Math.Min(capacity, 64L << 20));
        foreach (DiskLayer layer in disk.Layers)
        {
            _ = layer.AllocatedBytes;
            layer.Check();
        }
    }

    private void ExerciseWrite(string folder, List<FuzzFile> files, uint selector, bool chainOpened)
    {
        string path = Path.Combine(folder, files[0].Name);
        VirtualDisk disk;
        try
        {
            disk = VirtualDisk.Open(path, FileAccess.ReadWrite, new DiskOpenOptions { AllowedParentRoot = folder });
        }
        catch (VirtualDiskException ex)
        {
            // VirtualDiskException's promise: nothing is written to a file that raised it.
            EnsureUnchanged(folder, files, "a read-write open that refused the file", ex);
            throw;
        }
        var written = new List<(long At, byte[] Data)>();
        long blockSize;
        using (disk)
        {
            long capacity = disk.Capacity;
            int sector = disk.LogicalSectorSize;
            blockSize = disk.Top.BlockSize;
            if (sector <= 0 || capacity < sector)
                return;
            foreach (long at in new[] { 0L, capacity / 2 / sector * sector, capacity / sector * sector - sector }.Distinct())
            {
                // Each sector its own pattern: two sectors landing in one place read back wrong.
                byte[] data = new byte[sector];
                for (int i = 0; i < data.Length; i++)
                    data[i] = (byte)(selector + i + at / sector * 7);
                disk.Content.Position = at;
                disk.Content.Write(data, 0, data.Length);
                written.Add((at, data));
            }
            disk.Flush();
            foreach ((long at, byte[] data) in written)
                ExpectContent(disk.Content, at, data, path, "after writing it");
        }
        foreach (FuzzFile f in files)
        {
            long length = new FileInfo(Path.Combine(folder, f.Name)).Length;
            long bound = f.Bytes.Length + 3 * (Math.Max(blockSize, 0) + (1L << 20)) + (64L << 20);
            if (length > bound)
                throw new FuzzFindingException($"'{f.Name}' grew from {f.Bytes.Length} to {length} bytes for {written.Count} written sectors");
        }
        if (!chainOpened)
            return;
        try
        {
            using VirtualDisk again = VirtualDisk.Open(path, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = folder });
            foreach ((long at, byte[] data) in written)
                ExpectContent(again.Content, at, data, path, "after reopening it");
            again.Top.Check();
        }
        catch (VirtualDiskException ex)
        {
            throw new FuzzFindingException($"'{path}' opened read-only before a few sectors were written to it, and is refused after: {ex.Message}", ex);
        }
    }

    private void ExerciseConvert(string path, string folder, string into)
    {
        using VirtualDisk source = VirtualDisk.Open(path, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = folder });
        long capacity = source.Capacity;
        if (capacity <= 0 || capacity > MaxConvertCapacity || capacity % 4096 != 0)
            return;
        // VMDK has 512-byte sectors only; a 4 KiB-sector disk is copied into a VHDX.
        DiskFormat format = source.Format == DiskFormat.Vhdx && source.LogicalSectorSize == 512 ? DiskFormat.Vmdk : DiskFormat.Vhdx;
        string target = Path.Combine(into, "converted" + (format == DiskFormat.Vmdk ? ".vmdk" : ".vhdx"));
        using (VirtualDisk copy = VirtualDisk.CreateDynamic(target, capacity, new DiskCreateOptions { Format = format, LogicalSectorSizeBytes = source.LogicalSectorSize }))
        {
            foreach (ChainExtent extent in source.MapExtents(0, capacity))
            {
                if (extent.Kind != ExtentKind.Data)
                    continue;
                for (long at = extent.Position; at < extent.End; at += _buffer.Length)
                {
                    int n = (int)Math.Min(_buffer.Length, extent.End - at);
                    Read(source.Content, at, n, _buffer);
                    copy.Content.Position = at;
                    copy.Content.Write(_buffer, 0, n);
                }
            }
            copy.Flush();
        }
        try
        {
            using VirtualDisk done = VirtualDisk.Open(target, FileAccess.Read);
            if (done.Capacity != capacity)
                throw new FuzzFindingException($"the {format} copy of '{path}' has {done.Capacity} bytes instead of {capacity}");
            for (long at = 0; at < capacity; at += _buffer.Length)
            {
                int n = (int)Math.Min(_buffer.Length, capacity - at);
                Read(source.Content, at, n, _buffer);
                Read(done.Content, at, n, _other);
                if (!_buffer.AsSpan(0, n).SequenceEqual(_other.AsSpan(0, n)))
                    throw new FuzzFindingException($"the {format} copy of '{path}' differs from it in [{at}, {at + n})");
            }
            IReadOnlyList<string> problems = done.Top.Check();
            if (problems.Count > 0)
                throw new FuzzFindingException($"the {format} copy of '{path}' fails its own check: {string.Join("; ", problems)}");
        }
        catch (VirtualDiskException ex)
        {
            throw new FuzzFindingException($"the {format} copy of '{path}' the engine wrote is refused: {ex.Message}", ex);
        }
    }

    /// <summary>Where reads look: the start, a third in, across the first block boundary, the end.</summary>
    private static IEnumerable<long> Probes(long size, long blockSize)
    {
        var probes = new SortedSet<long> { 0, size / 3 / 512 * 512, size - ProbeLength };
        if (blockSize > 333 && blockSize < size)
            probes.Add(blockSize - 333);
        return probes.Where(p => p >= 0 && p < size);
    }

    private static void Read(Stream content, long at, int count, byte[] into)
    {
        content.Position = at;
        int done = 0;
        while (done < count)
        {
            int n = content.Read(into, done, count - done);
            if (n <= 0)
                throw new FuzzFindingException($"the content stream ended at {at + done}, inside the disk ({content.Length} bytes)");
            done += n;
        }
    }

    private void ExpectContent(Stream content, long at, byte[] expected, string path, string when)
    {
        Read(content, at, expected.Length, _other);
        if (!_other.AsSpan(0, expected.Length).SequenceEqual(expected))
            throw new FuzzFindingException($"'{path}': the sector written at {at} reads back differently {when}");
    }

    private string Fresh(string name)
    {
        string path = Path.Combine(_root, name);
        if (Directory.Exists(path))
            Directory.Delete(path, recursive: true);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Writes the files sparsely: only the 64 KiB pieces that are not all zero.</summary>
    private static void WriteFiles(string folder, List<FuzzFile> files)
    {
        foreach (FuzzFile f in files)
        {
            using var fs = new FileStream(Path.Combine(folder, f.Name), FileMode.CreateNew, FileAccess.Write);
            fs.SetLength(f.Bytes.Length);
            for (int at = 0; at < f.Bytes.Length; at += 64 * 1024)
            {
                ReadOnlySpan<byte> piece = f.Bytes.AsSpan(at, Math.Min(64 * 1024, f.Bytes.Length - at));
                if (piece.IndexOfAnyExcept((byte)0) < 0)
                    continue;
                fs.Position = at;
                fs.Write(piece);
            }
        }
    }

    /// <summary>The folder holds exactly the input's files, byte for byte.</summary>
    private void EnsureUnchanged(string folder, List<FuzzFile> files, string what, VirtualDiskException? refusal = null)
    {
        try
        {
            EnsureUnchanged(folder, files, what);
        }
        catch (FuzzFindingException finding) when (refusal is not null)
        {
            throw new FuzzFindingException($"{finding.Message}; it said: {refusal.Message}", refusal);
        }
    }

    private void EnsureUnchanged(string folder, List<FuzzFile> files, string what)
    {
        var expected = new HashSet<string>(files.Select(f => f.Name));
        foreach (string present in Directory.EnumerateFileSystemEntries(folder))
        {
            if (!expected.Contains(Path.GetFileName(present)))
                throw new FuzzFindingException($"{what} created '{Path.GetFileName(present)}'");
        }
        foreach (FuzzFile f in files)
        {
            string path = Path.Combine(folder, f.Name);
            if (!File.Exists(path))
                throw new FuzzFindingException($"{what} removed '{f.Name}'");
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            if (fs.Length != f.Bytes.Length)
                throw new FuzzFindingException($"{what} changed the length of '{f.Name}' from {f.Bytes.Length} to {fs.Length} bytes");
            for (int at = 0; at < f.Bytes.Length; at += _buffer.Length)
            {
                int n = Math.Min(_buffer.Length, f.Bytes.Length - at);
                fs.ReadExactly(_buffer, 0, n);
                int diff = _buffer.AsSpan(0, n).CommonPrefixLength(f.Bytes.AsSpan(at, n));
                if (diff < n)
                    throw new FuzzFindingException($"{what} changed '{f.Name}' at byte {at + diff}");
            }
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
