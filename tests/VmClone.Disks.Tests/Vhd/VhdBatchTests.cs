using System;
using System.IO;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Disks.Tests.Vhd;

/// <summary>A batch of writes into a VHD costs a few flushes, not a few per write, and reads back as written.</summary>
public class VhdBatchTests
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

    [Fact]
    public void FortyWritesIntoNewBlocksOfAChildInOneBatchCostAFewFlushes()
    {
        using var dir = new TempFolder();
        string parent = dir.File("base.vhd"), child = dir.File("child.vhd");
        long size = 64L << 20;
        VirtualDisk.CreateDynamic(parent, size, new DiskCreateOptions { BlockSizeBytes = 512 * 1024 }).Dispose();
        VirtualDisk.CreateDifferencing(child, parent, new DiskCreateOptions { BlockSizeBytes = 512 * 1024 }).Dispose();
        var model = new byte[size];
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
                        long at = i * (1L << 20) + 8192;
                        disk.Top.Write(at, data, 0, data.Length);
                        data.CopyTo(model, at);
                    }
                }
            }
            finally
            {
                FileAccessor.Observer = null;
            }
        }
        Assert.True(counter.Flushes <= 6, $"{counter.Flushes} flushes for one batch");
        using VirtualDisk reopened = VirtualDisk.Open(child, FileAccess.Read);
        Assert.Equal(Hashing.Sha256Bytes(model), Hashing.Sha256Stream(reopened.Content));
        Assert.Empty(reopened.Top.Check());
    }
}
