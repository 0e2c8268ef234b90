using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using VmClone.Disks;

namespace VmClone.Fuzz;

/// <summary>
/// Writes the seed inputs of every target into FOLDER/vhdx, FOLDER/vmdk, FOLDER/vhd, FOLDER/qcow2 and FOLDER/chain
/// (the committed ones under tests/VmClone.Fuzz/seeds were made by this, with qemu-img 7.2):
/// small real disks made by the engine and by qemu-img/qemu-io (skipped with a note when
/// those are missing), each with a few sectors of data so that block tables, bitmaps and
/// grains are in use, plus what neither tool writes: VHDX logs that still need replaying and
/// VMDK descriptors with several kinds of extent. Every seed is checked to open cleanly.
/// </summary>
public static class SeedMaker
{
    private const long MiB = 1 << 20;

    public static void Make(string output)
    {
        string work = Path.Combine(Path.GetTempPath(), "vmclone-fuzz-seeds-" + Guid.NewGuid().ToString("N").Substring(0, 8));
        Directory.CreateDirectory(work);
        try
        {
            var seeds = new List<(FuzzTarget Target, string Name, byte[] Input)>();
            Engine(Path.Combine(work, "engine"), seeds);
            if (Tool("qemu-img") && Tool("qemu-io"))
                Qemu(Path.Combine(work, "qemu"), seeds);
            else
                Console.Error.WriteLine("qemu-img/qemu-io not found: the qemu-made seeds are left out (apt-get install qemu-utils).");
            foreach ((FuzzTarget target, string name, byte[] input) in seeds)
            {
                string folder = Path.Combine(output, target.ToString().ToLowerInvariant());
                Directory.CreateDirectory(folder);
                File.WriteAllBytes(Path.Combine(folder, name), input);
                Console.WriteLine($"{target,-5} {name,-32} {input.Length,8} bytes");
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static void Engine(string dir, List<(FuzzTarget, string, byte[])> seeds)
    {
        Directory.CreateDirectory(dir);
        var vhdx = new DiskCreateOptions { Format = DiskFormat.Vhdx, BlockSizeBytes = MiB };
        var vmdk = new DiskCreateOptions { Format = DiskFormat.Vmdk };

        string dynamic = Path.Combine(dir, "dynamic.vhdx");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(dynamic, 4 * MiB, vhdx))
            Scatter(d, 1);
        seeds.Add((FuzzTarget.Vhdx, "engine-dynamic", Single(dynamic)));

        string sectors4K = Path.Combine(dir, "sectors4k.vhdx");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(sectors4K, 8 * MiB, new DiskCreateOptions { Format = DiskFormat.Vhdx, BlockSizeBytes = 2 * MiB, LogicalSectorSizeBytes = 4096 }))
            Scatter(d, 2);
        seeds.Add((FuzzTarget.Vhdx, "engine-4k-sectors", Single(sectors4K)));

        // A child with partly written blocks: PARTIALLY_PRESENT entries and a sector bitmap.
        string child = Path.Combine(dir, "child.vhdx");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(child, dynamic, vhdx))
            Scatter(d, 3);
        seeds.Add((FuzzTarget.Vhdx, "engine-child-partial", Single(child)));
        string grandchild = Path.Combine(dir, "grandchild.vhdx");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(grandchild, child, vhdx))
            Scatter(d, 4);
        seeds.Add((FuzzTarget.Chain, "engine-vhdx-child-parent", Chain(child, dynamic)));
        seeds.Add((FuzzTarget.Chain, "engine-vhdx-three-levels", Chain(grandchild, child, dynamic)));

        seeds.Add((FuzzTarget.Vhdx, "engine-dirty-log", Single(DirtyLog(dir, "log1.vhdx", twoEntries: false))));
        seeds.Add((FuzzTarget.Vhdx, "engine-dirty-log-sequence", Single(DirtyLog(dir, "log2.vhdx", twoEntries: true))));
        string dirtyParent = DirtyLog(dir, "log-parent.vhdx", twoEntries: true);
        string overDirty = Path.Combine(dir, "over-dirty.vhdx");
        CreateChildOfDirty(overDirty, dirtyParent, vhdx);
        seeds.Add((FuzzTarget.Chain, "engine-vhdx-dirty-parent", Chain(overDirty, dirtyParent)));

        string sparse = Path.Combine(dir, "sparse.vmdk");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(sparse, 4 * MiB, vmdk))
            Scatter(d, 5);
        seeds.Add((FuzzTarget.Vmdk, "engine-monolithic-sparse", Single(sparse)));
        string delta = Path.Combine(dir, "delta.vmdk");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(delta, sparse, vmdk))
            Scatter(d, 6);
        seeds.Add((FuzzTarget.Vmdk, "engine-delta", Single(delta)));
        seeds.Add((FuzzTarget.Chain, "engine-vmdk-child-parent", Chain(delta, sparse)));

        // Descriptors with every kind of extent the engine reads, beside flat and sparse files.
        string flatData = Path.Combine(dir, "mixed-flat.bin");
        byte[] flatBytes = new byte[64 * 1024];
        Pattern(4096, 7).CopyTo(flatBytes, 0);
        File.WriteAllBytes(flatData, flatBytes);
        string zeroOnly = Path.Combine(dir, "zero.vmdk");
        File.WriteAllText(zeroOnly, Descriptor("monolithicFlat", "fffffffe", "RW 8192 ZERO"));
        seeds.Add((FuzzTarget.Vmdk, "handmade-zero-extent", Single(zeroOnly)));
        string mixed = Path.Combine(dir, "mixed.vmdk");
        // Each extent a file of its own (the engine refuses a file named by two extents).
        string flatData2 = Path.Combine(dir, "mixed-flat2.bin");
        File.WriteAllBytes(flatData2, flatBytes);
        File.WriteAllText(mixed, Descriptor("custom", "12345678", "RW 128 FLAT \"mixed-flat.bin\" 0", "RW 2048 ZERO", "RDONLY 8192 SPARSE \"sparse.vmdk\"", "RW 64 FLAT \"mixed-flat2.bin\" 64"));
        seeds.Add((FuzzTarget.Chain, "handmade-mixed-extents", Chain(mixed, flatData, sparse, flatData2)));

        // VHD: dynamic and differencing as Hyper-V lays them out, a block size other than 2 MiB.
        var vhd = new DiskCreateOptions { Format = DiskFormat.Vhd };
        string vhdParent = Path.Combine(dir, "dynamic.vhd");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(vhdParent, 4 * MiB, vhd))
            Scatter(d, 12);
        seeds.Add((FuzzTarget.Vhd, "engine-dynamic", Single(vhdParent)));
        string vhdSmallBlocks = Path.Combine(dir, "small-blocks.vhd");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(vhdSmallBlocks, 2 * MiB, new DiskCreateOptions { Format = DiskFormat.Vhd, BlockSizeBytes = 64 * 1024 }))
            Scatter(d, 13);
        seeds.Add((FuzzTarget.Vhd, "engine-64k-blocks", Single(vhdSmallBlocks)));
        string vhdFixed = Path.Combine(dir, "fixed.vhd");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(vhdFixed, 2 * MiB, new DiskCreateOptions { Format = DiskFormat.Vhd, Fixed = true }))
            Scatter(d, 19);
        seeds.Add((FuzzTarget.Vhd, "engine-fixed", Single(vhdFixed)));
        string vhdChild = Path.Combine(dir, "child.vhd");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(vhdChild, vhdParent, vhd))
            Scatter(d, 14);
        seeds.Add((FuzzTarget.Vhd, "engine-differencing", Single(vhdChild)));
        string vhdGrandchild = Path.Combine(dir, "grandchild.vhd");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(vhdGrandchild, vhdChild, vhd))
            Scatter(d, 15);
        seeds.Add((FuzzTarget.Chain, "engine-vhd-child-parent", Chain(vhdChild, vhdParent)));
        seeds.Add((FuzzTarget.Chain, "engine-vhd-three-levels", Chain(vhdGrandchild, vhdChild, vhdParent)));

        // qcow2: an image as qemu-img create makes it, small clusters, a child over a parent.
        string qcow2 = Path.Combine(dir, "base.qcow2");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(qcow2, 4 * MiB, new DiskCreateOptions { Format = DiskFormat.Qcow2 }))
            Scatter(d, 16);
        seeds.Add((FuzzTarget.Qcow2, "engine-qcow2", Single(qcow2)));
        string qcow2Small = Path.Combine(dir, "small.qcow2");
        using (VirtualDisk d = VirtualDisk.CreateDynamic(qcow2Small, 2 * MiB, new DiskCreateOptions { Format = DiskFormat.Qcow2, BlockSizeBytes = 4096 }))
            Scatter(d, 17);
        seeds.Add((FuzzTarget.Qcow2, "engine-qcow2-4k-clusters", Single(qcow2Small)));
        string qcow2Child = Path.Combine(dir, "child.qcow2");
        using (VirtualDisk d = VirtualDisk.CreateDifferencing(qcow2Child, qcow2, new DiskCreateOptions { Format = DiskFormat.Qcow2 }))
            Scatter(d, 18);
        seeds.Add((FuzzTarget.Chain, "engine-qcow2-child-parent", Chain(qcow2Child, qcow2)));

        foreach ((FuzzTarget target, string name, byte[] input) in seeds)
            Verify(target, name, input, dirtyLog: name.Contains("dirty", StringComparison.Ordinal));
    }

    private static void Qemu(string dir, List<(FuzzTarget, string, byte[])> seeds)
    {
        Directory.CreateDirectory(dir);
        string raw = Path.Combine(dir, "source.raw");
        using (var fs = new FileStream(raw, FileMode.CreateNew))
        {
            fs.SetLength(4 * MiB);
            foreach ((long at, int length, int seed) in new[] { (0L, 4096, 1), (65536L, 512, 2), (MiB + 12345, 3000, 3), (3 * MiB, 70000, 4) })
            {
                fs.Position = at;
                fs.Write(Pattern(length, seed));
            }
        }
        string[] writes = { "write -P 0x5a 0 4k", "write -P 0xa5 1M 512", "write -P 0x3c 3145728 4096" };

        string Make(string name, string format, string options, string size, params string[] io)
        {
            string path = Path.Combine(dir, name);
            Run(dir, "qemu-img", "create", "-q", "-f", format, "-o", options, name, size);
            foreach (string command in io)
                Run(dir, "qemu-io", "-f", format, "-c", command, name);
            return path;
        }

        seeds.Add((FuzzTarget.Vhdx, "qemu-dynamic", Single(Make("q-dynamic.vhdx", "vhdx", "subformat=dynamic,block_size=1M", "4M", writes))));
        seeds.Add((FuzzTarget.Vhdx, "qemu-dynamic-zero-writes", Single(Make("q-zero.vhdx", "vhdx", "subformat=dynamic,block_size=1M,block_state_zero=on", "4M",
            "write -P 0x11 0 512", "write -z 1M 1M", "write -z 2M 4096"))));
        seeds.Add((FuzzTarget.Vhdx, "qemu-fixed", Single(Make("q-fixed.vhdx", "vhdx", "subformat=fixed,block_size=1M,block_state_zero=off", "2M", "write -P 0x77 4096 4096"))));

        seeds.Add((FuzzTarget.Vmdk, "qemu-monolithic-sparse", Single(Make("q-sparse.vmdk", "vmdk", "subformat=monolithicSparse", "4M", writes))));
        seeds.Add((FuzzTarget.Vmdk, "qemu-zeroed-grain", Single(Make("q-zeroed.vmdk", "vmdk", "subformat=monolithicSparse,zeroed_grain=on", "4M",
            "write -P 0x22 0 4k", "write -z 1M 65536"))));
        string stream = Path.Combine(dir, "q-stream.vmdk");
        Run(dir, "qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", "source.raw", "q-stream.vmdk");
        seeds.Add((FuzzTarget.Vmdk, "qemu-stream-optimized", Single(stream)));

        string twoGb = Make("q-split.vmdk", "vmdk", "subformat=twoGbMaxExtentSparse", "4M", writes);
        seeds.Add((FuzzTarget.Chain, "qemu-two-gb-sparse", Chain(twoGb, Path.Combine(dir, "q-split-s001.vmdk"))));
        string flat = Make("q-flat.vmdk", "vmdk", "subformat=monolithicFlat", "1M", "write -P 0x5a 0 4k", "write -P 0x33 512k 512");
        seeds.Add((FuzzTarget.Chain, "qemu-monolithic-flat", Chain(flat, Path.Combine(dir, "q-flat-flat.vmdk"))));
        string twoGbFlat = Make("q-split-flat.vmdk", "vmdk", "subformat=twoGbMaxExtentFlat", "1M", "write -P 0x44 8k 4k");
        seeds.Add((FuzzTarget.Chain, "qemu-two-gb-flat", Chain(twoGbFlat, Path.Combine(dir, "q-split-flat-f001.vmdk"))));

        Make("q-base.vmdk", "vmdk", "subformat=monolithicSparse", "4M", writes);
        string over = Path.Combine(dir, "q-child.vmdk");
        Run(dir, "qemu-img", "create", "-q", "-f", "vmdk", "-b", "q-base.vmdk", "-F", "vmdk", "q-child.vmdk");
        Run(dir, "qemu-io", "-f", "vmdk", "-c", "write -P 0x66 64k 512", "-c", "write -P 0x67 2M 4k", "q-child.vmdk");
        seeds.Add((FuzzTarget.Chain, "qemu-vmdk-child-parent", Chain(over, Path.Combine(dir, "q-base.vmdk"))));

        // VHD as qemu writes it: fixed (the footer only at the end), dynamic, sized by CHS or by force_size.
        seeds.Add((FuzzTarget.Vhd, "qemu-fixed", Single(Make("q-fixed.vhd", "vpc", "subformat=fixed,force_size=on", "2M", "write -P 0x5a 0 4k", "write -P 0x33 1M 512"))));
        seeds.Add((FuzzTarget.Vhd, "qemu-dynamic", Single(Make("q-dynamic.vhd", "vpc", "subformat=dynamic", "4M", writes))));
        seeds.Add((FuzzTarget.Vhd, "qemu-dynamic-force-size", Single(Make("q-dynamic-fs.vhd", "vpc", "subformat=dynamic,force_size=on", "4M", writes))));

        // qcow2 as qemu writes it: version 2, extended L2 entries, compressed clusters, a backing file.
        seeds.Add((FuzzTarget.Qcow2, "qemu-compat-0.10", Single(Make("q-v2.qcow2", "qcow2", "compat=0.10,cluster_size=4096", "4M", writes))));
        seeds.Add((FuzzTarget.Qcow2, "qemu-extended-l2", Single(Make("q-ext.qcow2", "qcow2", "extended_l2=on,cluster_size=65536", "4M", "write -P 0x5a 0 4k", "write -P 0xa5 1M 512", "write -z 2M 64k"))));
        Run(dir, "qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", "source.raw", "q-compressed.qcow2");
        seeds.Add((FuzzTarget.Qcow2, "qemu-compressed", Single(Path.Combine(dir, "q-compressed.qcow2"))));
        Make("q-backing.qcow2", "qcow2", "cluster_size=65536", "4M", writes);
        string overlay = Path.Combine(dir, "q-overlay.qcow2");
        Run(dir, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "q-backing.qcow2", "-F", "qcow2", "q-overlay.qcow2");
        Run(dir, "qemu-io", "-f", "qcow2", "-c", "write -P 0x66 64k 512", "-c", "write -P 0x67 2M 4k", "q-overlay.qcow2");
        seeds.Add((FuzzTarget.Chain, "qemu-qcow2-overlay", Chain(overlay, Path.Combine(dir, "q-backing.qcow2"))));

        foreach ((FuzzTarget target, string name, byte[] input) in seeds.Where(s => s.Item2.StartsWith("qemu-", StringComparison.Ordinal)))
            Verify(target, name, input, dirtyLog: false);
    }

    /// <summary>
    /// A dynamic VHDX whose log still holds what a crash left: the BAT entry of a block written
    /// at the end of the file (and, with <paramref name="twoEntries"/>, a second entry that
    /// zeroes one sector of it and writes another), as Hyper-V would replay it.
    /// </summary>
    private static string DirtyLog(string dir, string name, bool twoEntries)
    {
        string path = Path.Combine(dir, name);
        using (VirtualDisk d = VirtualDisk.CreateDynamic(path, 4 * MiB, new DiskCreateOptions { Format = DiskFormat.Vhdx, BlockSizeBytes = MiB }))
            Scatter(d, 8);
        byte[] file = File.ReadAllBytes(path);
        long bat = RegionOffset(file, new Guid("2DC27766-F623-4200-9D64-115E9BFD4A08"));
        int header = 64 * 1024;
        long log = (long)BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(header + 72));
        long blockAt = (file.Length + MiB - 1) / MiB * MiB;
        Array.Resize(ref file, (int)(blockAt + MiB));
        Pattern(4096, 9).CopyTo(file, blockAt);

        // The block is the disk's third (index 2; its BAT entry is not yet set by Scatter's writes).
        byte[] batSector = file.AsSpan((int)bat, 4096).ToArray();
        BinaryPrimitives.WriteUInt64LittleEndian(batSector.AsSpan(2 * 8), (ulong)(blockAt / MiB) << 20 | 6);
        var guid = Guid.NewGuid();
        ulong length = (ulong)file.Length;
        byte[] first = LogEntry(guid, 10, 0, new[] { (bat, batSector) }, Array.Empty<(long, long)>(), length);
        first.CopyTo(file, log);
        if (twoEntries)
        {
            byte[] sector = Pattern(4096, 10);
            byte[] second = LogEntry(guid, 11, 0, new[] { (blockAt + 8192, sector) }, new[] { (blockAt + 4096, 4096L) }, length);
            second.CopyTo(file, log + first.Length);
        }
        foreach (int h in new[] { 64 * 1024, 128 * 1024 })
            guid.ToByteArray().CopyTo(file, h + 48);
        ChecksumRepair.RepairVhdx(file);
        File.Delete(path);
        File.WriteAllBytes(path, file);
        return path;
    }

    /// <summary>A child of a parent whose log is dirty: the child is made over a replayed copy, then pointed back at the original.</summary>
    private static void CreateChildOfDirty(string child, string dirtyParent, DiskCreateOptions options)
    {
        // The DataWriteGuid the child records is the parent's, which replay does not change.
        using VirtualDisk parent = VirtualDisk.Open(dirtyParent, FileAccess.Read);
        VirtualDisk.CreateDifferencingFile(child, parent, options);
        using VirtualDisk d = VirtualDisk.Open(child, FileAccess.ReadWrite, new DiskOpenOptions { AllowedParentRoot = Path.GetDirectoryName(child) });
        Scatter(d, 11);
    }

    /// <summary>A log entry ([MS-VHDX] 2.3.1) of data and zero descriptors; its checksum is left to <see cref="ChecksumRepair"/>.</summary>
    private static byte[] LogEntry(Guid guid, ulong sequence, uint tail, (long At, byte[] Sector)[] data, (long At, long Length)[] zeros, ulong fileLength)
    {
        const int Sector = 4096;
        int descriptors = data.Length + zeros.Length;
        int descriptorSectors = (64 + descriptors * 32 + Sector - 1) / Sector;
        var entry = new byte[(descriptorSectors + data.Length) * Sector];
        Encoding.ASCII.GetBytes("loge").CopyTo(entry, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(8), (uint)entry.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(12), tail);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(16), sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(24), (uint)descriptors);
        guid.ToByteArray().CopyTo(entry, 32);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(48), fileLength);
        BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(56), fileLength);
        int d = 64;
        foreach ((long at, long length) in zeros)
        {
            Encoding.ASCII.GetBytes("zero").CopyTo(entry, d);
            BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(d + 8), (ulong)length);
            BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(d + 16), (ulong)at);
            BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(d + 24), sequence);
            d += 32;
        }
        for (int i = 0; i < data.Length; i++, d += 32)
        {
            byte[] sector = data[i].Sector;
            Encoding.ASCII.GetBytes("desc").CopyTo(entry, d);
            sector.AsSpan(Sector - 4, 4).CopyTo(entry.AsSpan(d + 4));
            sector.AsSpan(0, 8).CopyTo(entry.AsSpan(d + 8));
            BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(d + 16), (ulong)data[i].At);
            BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(d + 24), sequence);
            Span<byte> s = entry.AsSpan((descriptorSectors + i) * Sector, Sector);
            Encoding.ASCII.GetBytes("data").CopyTo(s);
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(4), (uint)(sequence >> 32));
            sector.AsSpan(8, Sector - 12).CopyTo(s.Slice(8));
            BinaryPrimitives.WriteUInt32LittleEndian(s.Slice(Sector - 4), (uint)sequence);
        }
        return entry;
    }

    private static long RegionOffset(byte[] file, Guid id)
    {
        int table = 192 * 1024;
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(table + 8));
        for (int i = 0; i < count; i++)
        {
            int e = table + 16 + i * 32;
            if (new Guid(file.AsSpan(e, 16)) == id)
                return (long)BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(e + 16));
        }
        throw new InvalidOperationException($"region {id} not found");
    }

    private static string Descriptor(string createType, string cid, params string[] extents)
    {
        var sb = new StringBuilder();
        sb.Append("# Disk DescriptorFile\nversion=1\nCID=").Append(cid).Append("\nparentCID=ffffffff\ncreateType=\"").Append(createType).Append("\"\n\n# Extent description\n");
        foreach (string e in extents)
            sb.Append(e).Append('\n');
        sb.Append("\n# The Disk Data Base\nddb.adapterType = \"ide\"\nddb.geometry.cylinders = \"16\"\nddb.geometry.heads = \"16\"\nddb.geometry.sectors = \"63\"\n");
        return sb.ToString();
    }

    /// <summary>A few short writes across the disk (at most one per block): tables, bitmaps and grains in use, little data.</summary>
    private static void Scatter(VirtualDisk d, int seed)
    {
        int sector = d.LogicalSectorSize;
        long capacity = d.Capacity;
        foreach (long at in new[] { 0L, capacity / 3, capacity - 2L * sector })
        {
            byte[] b = Pattern(sector * (seed % 2 + 1), seed + (int)(at / sector));
            d.Content.Position = at / sector * sector;
            d.Content.Write(b, 0, b.Length);
        }
    }

    /// <summary>Bytes that are easy to recognise and never all zero.</summary>
    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        for (int i = 0; i < length; i++)
            b[i] = (byte)(seed * 31 + i / 16 + 1 | 1);
        return b;
    }

    private static byte[] Single(string path) => FuzzInput.Compact(File.ReadAllBytes(path));

    private static byte[] Chain(params string[] paths) =>
        FuzzInput.EncodeChain(paths.Select(p => new FuzzFile(Path.GetFileName(p), File.ReadAllBytes(p))));

    /// <summary>
    /// A seed must open and check cleanly (a broken seed wastes the whole run); a seed with a
    /// dirty log only opens, its check rightly noting the log not yet replayed into the file.
    /// </summary>
    private static void Verify(FuzzTarget target, string name, byte[] input, bool dirtyLog)
    {
        List<FuzzFile> files = FuzzHarness.Decode(target, input);
        string dir = Path.Combine(Path.GetTempPath(), "vmclone-fuzz-verify-" + Guid.NewGuid().ToString("N").Substring(0, 8));
        Directory.CreateDirectory(dir);
        try
        {
            foreach (FuzzFile f in files)
                File.WriteAllBytes(Path.Combine(dir, f.Name), f.Bytes);
            string top = Path.Combine(dir, files[0].Name);
            using DiskLayer layer = VirtualDisk.OpenLayer(top, FileAccess.Read);
            IReadOnlyList<string> problems = layer.Check();
            if (problems.Count > 0 && !dirtyLog)
                throw new InvalidOperationException($"seed {name}: {string.Join("; ", problems)}");
            if (layer.Type != DiskType.Differencing || target == FuzzTarget.Chain)
            {
                using VirtualDisk disk = VirtualDisk.Open(top, FileAccess.Read, new DiskOpenOptions { AllowedParentRoot = dir });
                foreach (DiskLayer l in disk.Layers)
                {
                    problems = l.Check();
                    if (problems.Count > 0 && !dirtyLog)
                        throw new InvalidOperationException($"seed {name}: {l.Path}: {string.Join("; ", problems)}");
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static bool Tool(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator).Any(d => File.Exists(Path.Combine(d, name)));

    private static void Run(string dir, string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            info.ArgumentList.Add(a);
        using Process p = Process.Start(info)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited with {p.ExitCode}: {output}");
    }
}
