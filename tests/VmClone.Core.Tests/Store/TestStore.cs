using System;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using VmClone.Core.Store;
using VmClone.Disks;

namespace VmClone.Core.Tests.Store;

/// <summary>A store in a fresh temp folder, deleted (read-only files and all) on dispose, with byte helpers.</summary>
public sealed class TestStore : IDisposable
{
    public const long VolumeSize = 64L << 20;

    /// <param name="rememberBases">Open the store as a fleet command does (see <see cref="VmStore.At"/>).</param>
    public TestStore(bool rememberBases = false)
    {
        Folder = Path.Combine(Path.GetTempPath(), "vmclone-core-" + Guid.NewGuid().ToString("N").Substring(0, 12));
        Directory.CreateDirectory(Folder);
        Root = Path.Combine(Folder, "store");
        RememberBases = rememberBases;
        Store = VmStore.At(Root, rememberBases);
    }

    public bool RememberBases { get; }

    /// <summary>The temp folder (the store is its "store" subfolder; sources live beside it).</summary>
    public string Folder { get; }

    public string Root { get; private set; }

    public VmStore Store { get; private set; }

    public string File(string name) => Path.Combine(Folder, name);

    /// <summary>Points at the store after it was moved to <paramref name="newRoot"/>.</summary>
    public void Moved(string newRoot)
    {
        Root = newRoot;
        Store = VmStore.At(newRoot, RememberBases);
    }

    /// <summary>A dynamic VHDX (or VMDK) source disk with <paramref name="text"/> written at a few offsets.</summary>
    public string SourceDisk(string name, string? text, long size = VolumeSize)
    {
        string path = File(name);
        using VirtualDisk disk = VirtualDisk.CreateDynamic(path, size);
        if (text is not null)
        {
            Write(disk, 0, text);
            Write(disk, size / 2 + 4096, text + " (middle)");
        }
        return path;
    }

    public static void Write(string path, long offset, string text)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.ReadWrite);
        Write(disk, offset, text);
    }

    private static void Write(VirtualDisk disk, long offset, string text)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
        disk.Content.Position = offset;
        disk.Content.Write(bytes, 0, bytes.Length);
    }

    public static string Read(string path, long offset, int count)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read);
        byte[] buffer = new byte[count];
        disk.Content.Position = offset;
        int done = 0;
        while (done < count)
        {
            int n = disk.Content.Read(buffer, done, count - done);
            if (n <= 0)
                break;
            done += n;
        }
        return System.Text.Encoding.UTF8.GetString(buffer).TrimEnd('\0');
    }

    public static string Hash(string path, DiskOpenOptions? options = null)
    {
        using VirtualDisk disk = VirtualDisk.Open(path, FileAccess.Read, options);
        using SHA256 sha = SHA256.Create();
        return Convert.ToHexString(sha.ComputeHash(disk.Content));
    }

    public string Volume(string clone, string volume) =>
        Store.GetClone(clone).Volumes.Single(v => v.Name == volume).Path;

    public string BaseVolume(string baseName, string volume) =>
        Store.GetBase(baseName).Volumes.Single(v => v.Name == volume).Path;

    /// <summary>Every file under the folder with its length and write time: what "nothing was touched" compares.</summary>
    public string Snapshot() => string.Join("\n", Directory.EnumerateFileSystemEntries(Folder, "*", SearchOption.AllDirectories)
        .OrderBy(p => p, StringComparer.Ordinal)
        .Select(p => System.IO.File.Exists(p) ? $"{p} {new FileInfo(p).Length} {System.IO.File.GetLastWriteTimeUtc(p):O}" : p));

    public void Dispose()
    {
        Store.Dispose();
        try
        {
            foreach (string f in Directory.EnumerateFiles(Folder, "*", SearchOption.AllDirectories))
                System.IO.File.SetAttributes(f, FileAttributes.Normal);
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
