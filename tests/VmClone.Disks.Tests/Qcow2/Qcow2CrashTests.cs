using System;
using System.Collections.Generic;
using System.IO;
using VmClone.Disks.Qcow2;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>
/// A qcow2 write workload cut off before its k-th file write, resize or flush, and then any
/// subset of the writes made since the last completed flush lost (a power cut): `qemu-img check`
/// must find no corruption (leaks are allowed), and every sector must read as before the
/// workload or as one of the writes made to it.
/// </summary>
public class Qcow2CrashTests
{
    private const long Size = 6L << 20;
    private const int Sector = 512;

    internal sealed class Cut : Exception
    {
    }

    internal sealed class Recorder : IFileWriteObserver
    {
        public readonly List<(long Position, byte[] Before)> Unflushed = new();
        public int Ops;
        public int CrashAt = -1;
        public bool Dead;
        public string File = "";

        private void Step()
        {
            if (Dead)
                throw new Cut();
            if (++Ops == CrashAt)
            {
                Dead = true;
                throw new Cut();
            }
        }

        public void BeforeWrite(string path, long position, byte[] buffer, int offset, int count)
        {
            if (path != File)
                return;
            Step();
            byte[] before = new byte[count];
            using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            {
                fs.Position = position;
                int done = 0, n;
                while (done < count && (n = fs.Read(before, done, count - done)) > 0)
                    done += n;
                // Bytes past the old end read as zero after a lost extension.
            }
            Unflushed.Add((position, before));
        }

        public void BeforeSetLength(string path, long length)
        {
            if (path == File)
                Step();
        }

        public void BeforeFlush(string path)
        {
            if (path == File)
                Step();
        }

        public void AfterFlush(string path)
        {
            if (path == File)
                Unflushed.Clear();
        }
    }

    private static List<(long At, byte[] Data)> Workload(long cluster, int seed)
    {
        var random = new Random(seed);
        var ops = new List<(long, byte[])>();
        for (int i = 0; i < 14; i++)
        {
            int length = random.Next(1, 3 * (int)cluster + 4000);
            long at = random.NextInt64(0, Size - length);
            byte[] data = new byte[length];
            random.NextBytes(data);
            ops.Add((at, data));
        }
        return ops;
    }

    internal static int Run(string image, List<(long At, byte[] Data)> ops, Recorder recorder)
    {
        FileAccessor.Observer = recorder;
        try
        {
            VirtualDisk? disk = null;
            try
            {
                disk = Qcow2Chain.Open(image, writable: true);
                foreach ((long at, byte[] data) in ops)
                {
                    disk.Content.Position = at;
                    disk.Content.Write(data, 0, data.Length);
                }
                disk.Flush();
            }
            catch (Cut)
            {
            }
            finally
            {
                try
                {
                    disk?.Dispose();
                }
                catch (Cut)
                {
                }
            }
        }
        finally
        {
            FileAccessor.Observer = null;
        }
        return recorder.Ops;
    }

    [OracleTheory(tools: new[] { "qemu-img", "qemu-io" })]
    [InlineData(4096L, false)]
    [InlineData(65536L, false)]
    [InlineData(32768L, true)]
    public void AWriteCutOffAnywhereLeavesOnlyLeaksAndEveryFlushedWrite(long cluster, bool extendedL2)
    {
        using var dir = new TempFolder();
        string baseImage = QemuImage.Create(dir.File("base.qcow2"), Size, "");
        QemuImage.WriteRandom(baseImage, "qcow2", Size, 5, 16);
        string pristine = dir.File("pristine.qcow2");
        byte[] initial;
        using (VirtualDisk parent = Qcow2Chain.Open(baseImage))
        {
            initial = new byte[Size];
            parent.Content.ReadExactly(initial, 0, initial.Length);
            Qcow2Layer.CreateChild(pristine, parent.Top, new Qcow2CreateOptions { ClusterSize = cluster, ExtendedL2 = extendedL2 });
        }
        List<(long At, byte[] Data)> ops = Workload(cluster, (int)cluster);
        // Every version of the content the workload passes through.
        var versions = new List<byte[]> { initial };
        foreach ((long at, byte[] data) in ops)
        {
            byte[] next = (byte[])versions[^1].Clone();
            data.CopyTo(next, at);
            versions.Add(next);
        }

        string image = dir.File("clone.qcow2");
        File.Copy(pristine, image);
        int total = Run(image, ops, new Recorder { File = image });
        Qcow2Check.AssertClean(image);
        File.Delete(image);

        var random = new Random(17);
        int step = Math.Max(1, total / 25);
        for (int k = 1; k <= total; k += step)
        {
            File.Copy(pristine, image);
            var recorder = new Recorder { File = image, CrashAt = k };
            Run(image, ops, recorder);
            // The power cut: each write since the last flush is kept or lost at random.
            using (var fs = new FileStream(image, FileMode.Open, FileAccess.ReadWrite))
            {
                for (int i = recorder.Unflushed.Count - 1; i >= 0; i--)
                {
                    if (random.Next(2) == 0)
                        continue;
                    fs.Position = recorder.Unflushed[i].Position;
                    fs.Write(recorder.Unflushed[i].Before);
                }
            }
            var (exit, corruptions, _, output) = Qcow2Check.Run(image);
            Assert.True(corruptions == 0 && (exit == 0 || exit == 3), $"cut at {k} of {total}: qemu-img check exit {exit}, {corruptions} corruptions\n{output}");
            using (VirtualDisk disk = Qcow2Chain.Open(image))
            {
                byte[] content = new byte[Size];
                disk.Content.ReadExactly(content, 0, content.Length);
                for (long s = 0; s < Size; s += Sector)
                {
                    bool known = versions.Exists(v => v.AsSpan((int)s, Sector).SequenceEqual(content.AsSpan((int)s, Sector)));
                    Assert.True(known, $"cut at {k} of {total}: sector {s / Sector} reads as no version the workload made");
                }
            }
            File.Delete(image);
        }
    }
}
