using System;
using System.IO;
using VmClone.Core.Store;
using Xunit;

namespace VmClone.Core.Tests.Store;

/// <summary>
/// What the store calls a full disk (DiskFull: "free some space and run the command again"):
/// the system's own code for it, never the words of a message, and never another error that
/// happens to share a number with it on the other system.
/// </summary>
public class DiskFullTests
{
    private static IOException WithCode(int hresult, string message = "an I/O error") => new(message) { HResult = hresult };

    [Theory]
    [InlineData(28)]                   // ENOSPC (Linux, macOS): .NET gives the errno as the HResult
    [InlineData(unchecked((int)0x80070070))] // ERROR_DISK_FULL
    [InlineData(unchecked((int)0x80070027))] // ERROR_HANDLE_DISK_FULL
    public void TheSystemsCodeForAFullDiskIsDiskFull(int hresult)
    {
        Assert.True(PlanExecutor.IsDiskFull(WithCode(hresult)));
        Assert.True(PlanExecutor.IsDiskFull(new InvalidOperationException("wrapped", WithCode(hresult))));
    }

    [Theory]
    [InlineData(39)]  // ENOTEMPTY on Linux: the low bits of ERROR_HANDLE_DISK_FULL, but a folder not empty
    [InlineData(112)] // EHOSTDOWN on Linux: the low bits of ERROR_DISK_FULL
    [InlineData(unchecked((int)0x80131620))] // COR_E_IO, whatever the message says
    public void AnotherErrorIsNotDiskFullWhateverItsMessageSays(int hresult)
    {
        Assert.False(PlanExecutor.IsDiskFull(WithCode(hresult, "No space left on device")));
    }
}
