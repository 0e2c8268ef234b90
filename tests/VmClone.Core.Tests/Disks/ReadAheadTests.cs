using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using VmClone.Core.Disks;
using VmClone.Disks.Tests.Support;
using Xunit;

namespace VmClone.Core.Tests.Disks;

public class ReadAheadTests
{
    private const int BufferSize = 64 * 1024;
    private const int Depth = 3;

    [Fact]
    public void RangesComeBackInOrderWithTheirBytesAcrossGroups()
    {
        using var dir = new TempFolder();
        string path = dir.File("content.bin");
        byte[] content = new byte[4 << 20];
        new Random(3).NextBytes(content);
        File.WriteAllBytes(path, content);
        var rng = new Random(4);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read);
        using var ahead = new ReadAhead(file, BufferSize, Depth);

        // Groups of every size around the number of buffers, ranges of every length up to one buffer.
        foreach (int count in new[] { 1, 2, 3, 4, 7, 1, 20 })
        {
            var group = Enumerable.Range(0, count)
                .Select(_ => ((long)rng.Next(0, content.Length - BufferSize), rng.Next(1, BufferSize + 1)))
                .ToList();
            ahead.Begin(group);
            // The caller's list may be reused as soon as the group has begun.
            var expected = group.ToList();
            group.Clear();
            foreach ((long position, int length) in expected)
                Assert.True(ahead.Next().AsSpan(0, length).SequenceEqual(content.AsSpan((int)position, length)), $"range at {position}, {length} bytes");
        }
    }

    [Fact]
    public void AnotherGroupBeforeTheLastOneIsConsumedIsRefused()
    {
        using var dir = new TempFolder();
        string path = dir.File("content.bin");
        File.WriteAllBytes(path, new byte[BufferSize * 4]);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read);
        using var ahead = new ReadAhead(file, BufferSize, Depth);

        ahead.Begin(new[] { (0L, BufferSize), ((long)BufferSize, BufferSize) });
        ahead.Next();

        Assert.Throws<InvalidOperationException>(() => ahead.Begin(new[] { (0L, 1) }));
        ahead.Next();
        Assert.Throws<InvalidOperationException>(() => ahead.Next());
    }

    [Fact]
    public void WhatTheReaderMeetsReachesTheConsumerAtItsRange()
    {
        using var ahead = new ReadAhead(new FailingStream(failAtRead: 3), BufferSize, Depth);
        ahead.Begin(Enumerable.Range(0, 6).Select(i => ((long)i * BufferSize, BufferSize)).ToList());

        ahead.Next();
        ahead.Next();
        var e = Assert.Throws<IOException>(() => ahead.Next());
        Assert.Equal("read 3 failed", e.Message);
        // The trace keeps where the reader met it.
        Assert.Contains(nameof(FailingStream), e.StackTrace);
    }

    [Fact]
    public async Task DisposingInTheMiddleOfAGroupEndsTheReader()
    {
        var source = new FailingStream(failAtRead: int.MaxValue);
        var ahead = new ReadAhead(source, BufferSize, Depth);
        ahead.Begin(Enumerable.Range(0, 100).Select(i => ((long)i * BufferSize, BufferSize)).ToList());
        ahead.Next();

        // Bounded here, so that a reader left waiting fails the test instead of hanging it.
        Task disposing = Task.Run(ahead.Dispose);
        Assert.Same(disposing, await Task.WhenAny(disposing, Task.Delay(TimeSpan.FromSeconds(10))));

        // The reader stopped with its buffers full instead of reading the whole group.
        Assert.InRange(source.Reads, 1, Depth);
    }

    /// <summary>Reads as zeros, one read per call, and fails the given one.</summary>
    private sealed class FailingStream : Stream
    {
        private readonly int _failAtRead;

        public FailingStream(int failAtRead) => _failAtRead = failAtRead;

        public int Reads { get; private set; }

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => long.MaxValue;
        public override long Position { get; set; }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (++Reads == _failAtRead)
                throw new IOException($"read {Reads} failed");
            Array.Clear(buffer, offset, count);
            Position += count;
            return count;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
