using System;
using System.IO;
using System.Threading;
using VmClone.Disks;

namespace VmClone.Core.Store;

/// <summary>Why <see cref="RecordFile.ReadAll"/> refused a file.</summary>
internal enum RecordFileProblem
{
    /// <summary>A symbolic link stands where the record should be.</summary>
    Link,

    /// <summary>A FIFO, a device, a socket or a folder stands there.</summary>
    NotRegularFile,

    /// <summary>The file is larger than any such record.</summary>
    TooLarge,
}

/// <summary>A file a record names that <see cref="RecordFile.ReadAll"/> would not read.</summary>
internal sealed class RecordFileRefusal : Exception
{
    public RecordFileRefusal(string path, RecordFileProblem problem, string message, Exception? inner = null)
        : base(message, inner)
    {
        Path = path;
        Problem = problem;
    }

    public string Path { get; }

    public RecordFileProblem Problem { get; }
}

/// <summary>
/// Reads a small file that lies where someone else may write (a manifest, a plan, a merge
/// marker, a lock's owner file). Checking the path and then opening it leaves a window in which
/// the file can be swapped: a FIFO put there makes a plain open wait for a writer forever, and
/// a huge file is read whole. So the file is opened without following a link and without
/// blocking (on Linux, where the kind is then read from the open descriptor, as the engine opens
/// disks: <see cref="RegularFile"/>), and never more than the limit is read, whatever it grows to.
/// </summary>
internal static class RecordFile
{
    private static readonly AsyncLocal<Action<string>?> Hook = new();

    /// <summary>Called with the path just before it is opened; tests swap the file there (an AsyncLocal, for the test's own flow only).</summary>
    public static Action<string>? BeforeOpen
    {
        get => Hook.Value;
        set => Hook.Value = value;
    }

    /// <summary>
    /// The whole content of the regular file at <paramref name="path"/>, at most
    /// <paramref name="maxBytes"/> bytes. Throws <see cref="RecordFileRefusal"/> for a link, for
    /// anything but a regular file and for a larger file, and what FileStream throws otherwise
    /// (FileNotFoundException for a missing file).
    /// </summary>
    public static byte[] ReadAll(string path, int maxBytes)
    {
        string full = System.IO.Path.GetFullPath(path);
        Hook.Value?.Invoke(path);
        FileStream stream = Open(full);
        using (stream)
        {
            long length = stream.Length;
            if (length > maxBytes)
                throw TooLarge(full, maxBytes);
            // The file may still grow after its length was read: the buffer grows, but never past the limit.
            byte[] buffer = new byte[(int)Math.Min(maxBytes + 1L, Math.Max(length + 1, 4096))];
            int count = 0;
            while (true)
            {
                if (count == buffer.Length)
                {
                    if (count > maxBytes)
                        throw TooLarge(full, maxBytes);
                    Array.Resize(ref buffer, (int)Math.Min(maxBytes + 1L, buffer.Length * 2L));
                }
                int n = stream.Read(buffer, count, buffer.Length - count);
                if (n == 0)
                    break;
                count += n;
            }
            if (count > maxBytes)
                throw TooLarge(full, maxBytes);
            Array.Resize(ref buffer, count);
            return buffer;
        }
    }

    /// <summary>The text of <see cref="ReadAll"/> as UTF-8 (a byte order mark is dropped, as File.ReadAllText does).</summary>
    public static string ReadAllText(string path, int maxBytes)
    {
        byte[] bytes = ReadAll(path, maxBytes);
        int start = bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
        return System.Text.Encoding.UTF8.GetString(bytes, start, bytes.Length - start);
    }

    private static FileStream Open(string full)
    {
        try
        {
            if (RegularFile.OpenOnLinux(full, FileAccess.Read, FileShare.Read, refuseLink: true, out _) is FileStream opened)
                return opened;
            RegularFile.CheckBeforeOpen(full, refuseLink: true);
            return new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
        }
        catch (DiskFormatException ex) when (ex.FileKind is FileKind kind)
        {
            throw new RecordFileRefusal(full, kind == FileKind.SymbolicLink ? RecordFileProblem.Link : RecordFileProblem.NotRegularFile,
                $"'{full}' is {RegularFile.Describe(kind)}, not a regular file; it was not read.", ex);
        }
    }

    private static RecordFileRefusal TooLarge(string full, int maxBytes) =>
        new(full, RecordFileProblem.TooLarge, $"'{full}' is larger than {Format.Bytes(maxBytes)}; it was not read.");
}
