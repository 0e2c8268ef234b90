using System;
using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Qcow2;

/// <summary>A batch of writes into a qcow2 overlay costs a few flushes, not a few per write, and reads back as written.</summary>
public class Qcow2BatchTests
{
    private sealed class FlushCounter : IFileWriteObserver
    {
        public int Flushes { get; private set; }

        public void BeforeWrite(string path, long position, byte[] buffer, int offset, int count)
        {
        }

        public void BeforeSetLength(string path, long length)
        {
        }

        public void BeforeFlush(string path) => Flushes++;

        public void AfterFlush(string path)
        {
        }
    }

    /// <summary>
    /// Forty writes into new clusters of an overlay, some of them a second time into a cluster
    /// the batch wrote already, and a read in the middle: a few flushes for all of them, the
    /// content what was written over the parent's, and qemu-img check clean.
    /// </summary>
    [Fact]
    public void FortyWritesIntoAnOverlayInOneBatchCostAFewFlushes()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.qcow2"), child = dir.File("child.qcow2");
        long size = 64L << 20;
        var model = new byte[size];
        new Random(3).NextBytes(model);
        using (VirtualDisk d = VirtualDisk.CreateDynamic(parent, size))
            d.Content.Write(model, 0, model.Length);
        VirtualDisk.CreateDifferencing(child, parent).Dispose();
        var rnd = new Random(7);
        var counter = new FlushCounter();
        using (VirtualDisk disk = VirtualDisk.Open(child, FileAccess.ReadWrite))
        {
            FileAccessor.Observer = counter;
            try
            {
                using (disk.Top.BeginBatch())
                {
                    for (int i = 0; i < 40; i++)
                    {
                        var data = new byte[4096];
                        rnd.NextBytes(data);
                        // Every fifth write lands in the cluster of the write before it.
                        long at = i % 5 == 4 ? (i - 1) * (1L << 20) + 20000 : i * (1L << 20) + 8192;
                        disk.Top.Write(at, data, 0, data.Length);
                        data.CopyTo(model, at);
                        if (i == 20)
                        {
                            var back = new byte[4096];
                            disk.Content.Position = at;
                            disk.Content.ReadExactly(back, 0, back.Length);
                            Assert.Equal(data, back);
                        }
                    }
                }
            }
            finally
            {
                FileAccessor.Observer = null;
            }
        }
        Assert.True(counter.Flushes <= 12, $"{counter.Flushes} flushes for one batch of 40 writes");
        Qcow2Check.AssertClean(child);
        Assert.Equal(Hashing.Sha256Bytes(model), Oracle.QemuRawSha256(child, "qcow2"));
        using VirtualDisk reopened = VirtualDisk.Open(child, FileAccess.Read);
        Assert.Equal(Hashing.Sha256Bytes(model), Hashing.Sha256Stream(reopened.Content));
    }
}
