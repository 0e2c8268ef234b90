using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Text;
using CsCheck;
using VmClone.Disks.Qcow2;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>
/// Writes into qcow2 images: random writes against an in-memory model for several layouts,
/// then qemu reading what we wrote and `qemu-img check` finding no corruption and no leak;
/// the refusals of a read-write open; header bytes we do not know surviving a rewrite.
/// </summary>
public class Qcow2WriteTests
{
    private const int DiskSize = (3 << 20) + 7 * 512;

    private record struct WriteOp(int Offset, int Length, byte Seed);

    private static readonly Gen<WriteOp> GenWrite =
        Gen.Int[0, DiskSize - 1].SelectMany(off =>
            Gen.Int[1, Math.Min(150_000, DiskSize - off)].SelectMany(len =>
                Gen.Byte.Select(seed => new WriteOp(off, len, seed))));

    private static byte[] Data(WriteOp op)
    {
        var data = new byte[op.Length];
        new Random(op.Seed * 31 + op.Offset).NextBytes(data);
        if (op.Seed % 4 == 0)
            Array.Clear(data, 0, data.Length / 2);
        return data;
    }

    private static byte[] ReadAll(VirtualDisk disk)
    {
        var actual = new byte[disk.Capacity];
        disk.Content.Position = 0;
        disk.Content.ReadExactly(actual, 0, actual.Length);
        return actual;
    }

    private static void AssertSame(byte[] model, byte[] actual)
    {
        if (actual.AsSpan().SequenceEqual(model))
            return;
        int i = 0;
        while (actual[i] == model[i])
            i++;
        Assert.Fail($"content differs first at byte {i}: {actual[i]} instead of {model[i]}");
    }

    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData(4096L, false, false, false)]
    [InlineData(65536L, false, false, true)]
    [InlineData(16384L, true, false, true)]
    [InlineData(131072L, true, false, false)]
    [InlineData(65536L, false, true, true)]
    [InlineData(512L, false, false, true)]
    public void RandomWritesMatchTheModelAndQemuReadsThemCleanly(long cluster, bool extendedL2, bool version2, bool overlay)
    {
        GenWrite.Array[1, 6].Array[1, 3].Sample(sessions =>
        {
            using var dir = new TempFolder();
            var model = new byte[DiskSize];
            string image = dir.File("disk.qcow2");
            var options = new Qcow2CreateOptions { ClusterSize = cluster, ExtendedL2 = extendedL2, Version2 = version2 };
            if (overlay)
            {
                string baseImage = QemuImage.Create(dir.File("base.qcow2"), DiskSize, "cluster_size=64k");
                QemuImage.WriteRandom(baseImage, "qcow2", DiskSize, DiskSize, 12, maxLength: 64 * 1024);
                using (VirtualDisk parent = Qcow2Chain.Open(baseImage))
                {
                    model = ReadAll(parent);
                    Qcow2Layer.CreateChild(image, parent.Top, options);
                }
            }
            else
            {
                Qcow2Layer.Create(image, DiskSize, options);
            }
            foreach (WriteOp[] session in sessions)
            {
                using (VirtualDisk disk = Qcow2Chain.Open(image, writable: true))
                {
                    foreach (WriteOp op in session)
                    {
                        byte[] data = Data(op);
                        disk.Content.Position = op.Offset;
                        disk.Content.Write(data, 0, data.Length);
                        Buffer.BlockCopy(data, 0, model, op.Offset, data.Length);
                    }
                }
                using (VirtualDisk disk = Qcow2Chain.Open(image))
                {
                    AssertSame(model, ReadAll(disk));
                    Assert.Empty(disk.Top.Check());
                }
            }
            Qcow2Check.AssertClean(image);
            Assert.Equal(Hashing.Sha256Bytes(model), Oracle.QemuRawSha256(image, "qcow2"));
        }, iter: 4);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void WritesIntoQemuCompressedAndZeroClustersKeepTheImageClean()
    {
        using var dir = new TempFolder();
        string raw = QemuImage.MixedRaw(dir.File("source.raw"), 4L << 20, 81);
        string image = dir.File("compressed.qcow2");
        Oracle.Run("qemu-img", $"convert -q -c -f raw -O qcow2 \"{raw}\" \"{image}\"");
        Oracle.Run("qemu-io", $"-f qcow2 -c \"write -z 1M 256k\" \"{image}\"");
        byte[] model = File.ReadAllBytes(raw);
        Array.Clear(model, 1 << 20, 256 << 10);
        var random = new Random(82);
        using (VirtualDisk disk = Qcow2Chain.Open(image, writable: true))
        {
            for (int i = 0; i < 40; i++)
            {
                int length = random.Next(1, 100_000);
                int offset = random.Next(0, model.Length - length);
                byte[] data = new byte[length];
                random.NextBytes(data);
                disk.Content.Position = offset;
                disk.Content.Write(data, 0, length);
                Buffer.BlockCopy(data, 0, model, offset, length);
            }
        }
        Qcow2Check.AssertClean(image);
        Assert.Equal(Hashing.Sha256Bytes(model), Oracle.QemuRawSha256(image, "qcow2"));
        using VirtualDisk again = Qcow2Chain.Open(image);
        AssertSame(model, ReadAll(again));
    }

    private static void AssertWriteRefused(string image, string expected)
    {
        string before = Hashing.Sha256File(image);
        var ex = Assert.Throws<VirtualDiskException>(() => Qcow2Layer.Open(image, true).Dispose());
        Assert.Contains(image, ex.Message);
        Assert.Contains(expected, ex.Message);
        Assert.Equal(before, Hashing.Sha256File(image));
        using (Qcow2Layer.Open(image, false))
        {
        }
    }

    private static void PatchU64(string path, long at, ulong value)
    {
        byte[] b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        using FileStream fs = File.OpenWrite(path);
        fs.Position = at;
        fs.Write(b, 0, 8);
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void CorruptDirtySnapshotAndBitmapImagesAreNotOpenedForWriting()
    {
        using var dir = new TempFolder();
        string corrupt = QemuImage.Create(dir.File("corrupt.qcow2"), 1 << 20, "");
        PatchU64(corrupt, 72, 1UL << 1);
        AssertWriteRefused(corrupt, "marked corrupt");

        string dirty = QemuImage.Create(dir.File("dirty.qcow2"), 1 << 20, "");
        PatchU64(dirty, 72, 1UL << 0);
        AssertWriteRefused(dirty, "qemu-img check -r all");

        string snapshots = QemuImage.Create(dir.File("snap.qcow2"), 1 << 20, "");
        Oracle.Run("qemu-img", $"snapshot -c first \"{snapshots}\"");
        AssertWriteRefused(snapshots, "internal snapshot");

        string bitmaps = QemuImage.Create(dir.File("bitmap.qcow2"), 1 << 20, "");
        Oracle.Run("qemu-img", $"bitmap --add \"{bitmaps}\" b0");
        AssertWriteRefused(bitmaps, "bitmaps");
    }

    /// <summary>
    /// A qemu-made image given an unknown trailing header field and an unknown extension: after
    /// our writes and a re-point, both, the feature-name table and the other extensions are
    /// still there byte for byte, and qemu finds the image clean.
    /// </summary>
    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void UnknownHeaderFieldsAndExtensionsSurviveWritesAndRepointing()
    {
        using var dir = new TempFolder();
        const long size = 4L << 20;
        string baseA = QemuImage.Create(dir.File("a.qcow2"), size, "");
        QemuImage.WriteRandom(baseA, "qcow2", size, 91, 10);
        File.Copy(baseA, dir.File("b.qcow2"));
        string overlay = QemuImage.Create(dir.File("clone.qcow2"), 0, "", "a.qcow2", "qcow2");

        // Header length 112 → 120 (8 unknown bytes), an unknown extension before the end marker.
        byte[] head = new byte[4096];
        using (FileStream fs = File.OpenRead(overlay))
            fs.ReadExactly(head, 0, head.Length);
        int oldLength = (int)BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(100));
        int at = oldLength;
        var extensions = new MemoryStream();
        while (BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(at)) != 0)
        {
            int len = (int)BinaryPrimitives.ReadUInt32BigEndian(head.AsSpan(at + 4));
            extensions.Write(head, at, 8 + ((len + 7) & ~7));
            at += 8 + ((len + 7) & ~7);
        }
        byte[] unknownExtension = new byte[8 + 16];
        BinaryPrimitives.WriteUInt32BigEndian(unknownExtension, 0x5a5a0001);
        BinaryPrimitives.WriteUInt32BigEndian(unknownExtension.AsSpan(4), 13);
        Encoding.ASCII.GetBytes("keep me as is").CopyTo(unknownExtension, 8);
        extensions.Write(unknownExtension);
        extensions.Write(new byte[8]);
        byte[] name = Encoding.ASCII.GetBytes("a.qcow2");
        byte[] rebuilt = new byte[4096];
        Array.Copy(head, rebuilt, oldLength);
        BinaryPrimitives.WriteUInt32BigEndian(rebuilt.AsSpan(100), (uint)(oldLength + 8));
        byte[] trailing = { 0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67, 0x89 };
        trailing.CopyTo(rebuilt, oldLength);
        extensions.ToArray().CopyTo(rebuilt, oldLength + 8);
        long nameAt = oldLength + 8 + extensions.Length;
        name.CopyTo(rebuilt, nameAt);
        BinaryPrimitives.WriteUInt64BigEndian(rebuilt.AsSpan(8), (ulong)nameAt);
        using (FileStream fs = File.OpenWrite(overlay))
            fs.Write(rebuilt, 0, rebuilt.Length);
        Qcow2Check.AssertClean(overlay);
        byte[] kept = extensions.ToArray();

        using (VirtualDisk disk = Qcow2Chain.Open(overlay, writable: true))
        {
            disk.Content.Position = 12345;
            disk.Content.Write(new byte[200_000].Select((_, i) => (byte)i).ToArray(), 0, 200_000);
            using VirtualDisk b = Qcow2Chain.Open(dir.File("b.qcow2"));
            disk.Top.SetParent(ParentLink.For(overlay, b.Top));
        }
        byte[] after = new byte[4096];
        using (FileStream fs = File.OpenRead(overlay))
            fs.ReadExactly(after, 0, after.Length);
        Assert.Equal(trailing, after.AsSpan(oldLength, 8).ToArray());
        Assert.Equal(oldLength + 8, (int)BinaryPrimitives.ReadUInt32BigEndian(after.AsSpan(100)));
        Assert.True(after.AsSpan(oldLength + 8, kept.Length).SequenceEqual(kept), "the extensions changed");
        Qcow2Check.AssertClean(overlay);
        var info = System.Text.Json.JsonDocument.Parse(Oracle.Run("qemu-img", $"info --output=json \"{overlay}\"").StdOut).RootElement;
        Assert.Equal("b.qcow2", info.GetProperty("backing-filename").GetString());
        Assert.Equal("qcow2", info.GetProperty("backing-filename-format").GetString());
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void RepointedOverlayReadsTheSameThroughItsNewBackingFile()
    {
        using var dir = new TempFolder();
        const long size = 4L << 20;
        string baseA = QemuImage.Create(dir.File("a.qcow2"), size, "");
        QemuImage.WriteRandom(baseA, "qcow2", size, 95, 10);
        Directory.CreateDirectory(dir.File("moved"));
        string raw = dir.File("moved/base.raw");
        Oracle.Run("qemu-img", $"convert -q -O raw \"{baseA}\" \"{raw}\"");
        string overlay = dir.File("clone.qcow2");
        using (VirtualDisk a = Qcow2Chain.Open(baseA))
            Qcow2Layer.CreateChild(overlay, a.Top);
        QemuImage.WriteRandom(overlay, "qcow2", size, 96, 10);
        string before = Oracle.QemuRawSha256(overlay, "qcow2");
        using (VirtualDisk disk = Qcow2Chain.Open(overlay, writable: true))
        using (DiskLayer newParent = VirtualDisk.OpenLayer(raw, FileAccess.Read))
            disk.Top.SetParent(ParentLink.For(overlay, newParent));
        Qcow2Check.AssertClean(overlay);
        Assert.Equal(before, Oracle.QemuRawSha256(overlay, "qcow2"));
        File.Delete(baseA);
        using VirtualDisk reopened = Qcow2Chain.Open(overlay);
        Assert.Equal(DiskFormat.Raw, reopened.Layers[1].Format);
        Assert.Equal(before, Hashing.Sha256Stream(reopened.Content));
    }

    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData("")]
    [InlineData("extended_l2=on")]
    public void AWriteOfWholeClustersReadsNothingBeneathWhileAPartialOneReadsItsRest(string options)
    {
        using var dir = new TempFolder();
        const long size = 4L << 20;
        string parent = QemuImage.Create(dir.File("base.qcow2"), size, options);
        Oracle.Run("qemu-io", $"-f qcow2 -c \"write -P 0x5a 0 1M\" \"{parent}\"");
        string overlay = QemuImage.Create(dir.File("clone.qcow2"), size, options, backing: parent, backingFormat: "qcow2");
        string parentFull = Path.GetFullPath(parent);
        long Reads(Action work)
        {
            long read = 0;
            FileAccessor.ReadObserver = (path, count) => { if (path == parentFull) read += count; };
            try { work(); }
            finally { FileAccessor.ReadObserver = null; }
            return read;
        }
        var whole = new byte[256 << 10];
        new Random(7).NextBytes(whole);
        var part = new byte[1000];
        new Random(8).NextBytes(part);
        const int partAt = (512 << 10) + 100;
        using (VirtualDisk disk = Qcow2Chain.Open(overlay, writable: true))
        {
            // Four whole 64 KiB clusters over the parent's data: nothing beneath shows through.
            Assert.Equal(0, Reads(() => { disk.Content.Position = 0; disk.Content.Write(whole, 0, whole.Length); disk.Content.Flush(); }));
            // 1000 bytes inside a cluster (and a 2 KiB subcluster): the rest comes from the parent.
            Assert.True(Reads(() => { disk.Content.Position = partAt; disk.Content.Write(part, 0, part.Length); disk.Content.Flush(); }) > 0);
        }
        Qcow2Check.AssertClean(overlay);
        var expected = new byte[size];
        Array.Fill(expected, (byte)0x5a, 0, 1 << 20);
        Buffer.BlockCopy(whole, 0, expected, 0, whole.Length);
        Buffer.BlockCopy(part, 0, expected, partAt, part.Length);
        Assert.Equal(Hashing.Sha256Bytes(expected), Oracle.QemuRawSha256(overlay, "qcow2"));
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void AClusterAimedAtMetadataIsNotWrittenInPlace()
    {
        using var dir = new TempFolder();
        string image = QemuImage.Create(dir.File("disk.qcow2"), 4 << 20, "");
        Oracle.Run("qemu-io", $"-f qcow2 -c \"write -P 0x11 0 64k\" -c \"write -P 0x22 1M 64k\" \"{image}\"");
        byte[] head = new byte[8];
        ulong Read(long at)
        {
            using FileStream fs = File.OpenRead(image);
            fs.Position = at;
            fs.ReadExactly(head, 0, 8);
            return BinaryPrimitives.ReadUInt64BigEndian(head);
        }
        long l1 = (long)Read(40);
        long l2 = (long)(Read(l1) & 0x00FF_FFFF_FFFF_FE00UL);
        // Guest cluster 0 aimed at the L1 table.
        PatchU64(image, l2, (ulong)l1 | (1UL << 63));
        string before = Hashing.Sha256File(image);
        using (VirtualDisk disk = Qcow2Chain.Open(image, writable: true))
        {
            var ex = Assert.Throws<DiskFormatException>(() =>
            {
                disk.Content.Position = 100;
                disk.Content.Write(new byte[10], 0, 10);
            });
            Assert.Contains("metadata", ex.Message);
            Assert.Contains(image, ex.Message);
        }
        Assert.Equal(before, Hashing.Sha256File(image));

    }

    /// <summary>
    /// 512-byte clusters with 64-bit refcounts: the one-cluster refcount table qemu would make
    /// counts only 2 MiB of file. Ours is sized for the image fully written, so a whole disk of
    /// data goes in and qemu finds it clean.
    /// </summary>
    [OracleFact(tools: new[] { "qemu-img" })]
    public void AnImageWeCreateTakesAWholeDiskOfWrites()
    {
        using var dir = new TempFolder();
        const int size = 4 << 20;
        string image = dir.File("small-clusters.qcow2");
        Qcow2Layer.Create(image, size, new Qcow2CreateOptions { ClusterSize = 512, RefcountBits = 64 });
        byte[] model = new byte[size];
        new Random(3).NextBytes(model);
        using (VirtualDisk disk = Qcow2Chain.Open(image, writable: true))
        {
            disk.Content.Position = 0;
            disk.Content.Write(model, 0, model.Length);
        }
        Qcow2Check.AssertClean(image);
        Assert.Equal(Hashing.Sha256Bytes(model), Oracle.QemuRawSha256(image, "qcow2"));
    }

    private sealed class FlushCounter : IFileWriteObserver
    {
        public int Flushes;

        public int Writes;

        public void BeforeWrite(string path, long position, byte[] buffer, int offset, int count) => Writes++;

        public void BeforeSetLength(string path, long length)
        {
        }

        public void BeforeFlush(string path) => Flushes++;

        public void AfterFlush(string path)
        {
        }
    }

    /// <summary>
    /// A large write commits once in qcow2's order, not once per cluster: writing 8 MiB (128
    /// new 64 KiB clusters, two new L2 tables' worth of a 4 MiB-per-table layout) costs a
    /// handful of flushes and writes, where a flush sequence or a write per cluster would cost hundreds.
    /// </summary>
    [OracleFact(tools: new[] { "qemu-img" })]
    public void ALargeWriteCostsAFewFlushesAndWritesNotSomePerCluster()
    {
        using var dir = new TempFolder();
        string image = dir.File("disk.qcow2");
        Qcow2Layer.Create(image, 64L << 20);
        byte[] data = new byte[8 << 20];
        new Random(4).NextBytes(data);
        var counter = new FlushCounter();
        using (VirtualDisk disk = Qcow2Chain.Open(image, writable: true))
        {
            FileAccessor.Observer = counter;
            try
            {
                disk.Content.Position = 3 << 20;
                disk.Content.Write(data, 0, data.Length);
            }
            finally
            {
                FileAccessor.Observer = null;
            }
        }
        Assert.InRange(counter.Flushes, 1, 6);
        // The 128 clusters' data and counts are each written as runs, not one by one (a write
        // for each cluster's data and one for its count were 259 in all): the data is one run
        // broken only by the new L2 table, the counts one range of their block, the new table
        // and the L1 entry one write each.
        Assert.InRange(counter.Writes, 1, 12);
        Qcow2Check.AssertClean(image); // qemu-img: the runs of counts and entries left no leak or corruption
        using VirtualDisk again = Qcow2Chain.Open(image);
        byte[] back = new byte[data.Length];
        again.Content.Position = 3 << 20;
        again.Content.ReadExactly(back, 0, back.Length);
        Assert.True(back.AsSpan().SequenceEqual(data));
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void WritingOverBitmapsWhenAllowedClearsTheirConsistencyBit()
    {
        using var dir = new TempFolder();
        string image = QemuImage.Create(dir.File("bitmap.qcow2"), 4 << 20, "");
        Oracle.Run("qemu-img", $"bitmap --add \"{image}\" b0");
        var allow = new DiskOpenOptions { AllowWritingOverBitmaps = true };
        byte[] data = new byte[100_000];
        new Random(9).NextBytes(data);
        using (VirtualDisk disk = Qcow2Chain.Open(image, allow, writable: true))
        {
            disk.Content.Position = 4096;
            disk.Content.Write(data, 0, data.Length);
            Assert.True(((Qcow2Layer)disk.Top).BitmapsInvalidated);
        }
        byte[] field = new byte[8];
        using (FileStream fs = File.OpenRead(image))
        {
            fs.Position = 88;
            fs.ReadExactly(field, 0, 8);
        }
        Assert.Equal(0UL, BinaryPrimitives.ReadUInt64BigEndian(field) & 1);
        // qemu no longer loads bitmaps marked inconsistent, so the clusters they hold may count as leaks; never as corruption.
        var (exit, corruptions, _, output) = Qcow2Check.Run(image);
        Assert.True(corruptions == 0 && (exit == 0 || exit == 3), output);
        byte[] model = new byte[4 << 20];
        data.CopyTo(model, 4096);
        Assert.Equal(Hashing.Sha256Bytes(model), Oracle.QemuRawSha256(image, "qcow2"));
    }

    [OracleFact(tools: new[] { "qemu-img", "qemu-io" })]
    public void TwoGuestClustersNamingOneHostClusterAreNotWritten()
    {
        using var dir = new TempFolder();
        string image = QemuImage.Create(dir.File("disk.qcow2"), 4 << 20, "");
        Oracle.Run("qemu-io", $"-f qcow2 -c \"write -P 0x11 0 64k\" -c \"write -P 0x22 1M 64k\" \"{image}\"");
        byte[] raw = new byte[8];
        ulong Read(long at)
        {
            using FileStream fs = File.OpenRead(image);
            fs.Position = at;
            fs.ReadExactly(raw, 0, 8);
            return BinaryPrimitives.ReadUInt64BigEndian(raw);
        }
        long l2 = (long)(Read((long)Read(40)) & 0x00FF_FFFF_FFFF_FE00UL);
        // Guest cluster 0 names the host cluster of guest cluster 16 (1 MiB): a write at 0 would change both.
        PatchU64(image, l2, Read(l2 + 16 * 8));
        string before = Hashing.Sha256File(image);
        using (VirtualDisk disk = Qcow2Chain.Open(image, writable: true))
        {
            var ex = Assert.Throws<DiskFormatException>(() =>
            {
                disk.Content.Position = 100;
                disk.Content.Write(new byte[10], 0, 10);
            });
            Assert.Contains("another guest cluster maps to already", ex.Message);
            Assert.Contains(image, ex.Message);
        }
        Assert.Equal(before, Hashing.Sha256File(image));
    }
}
